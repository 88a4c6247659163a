/**
 * @module data/policy/client-address
 * The client address the policies judge: the peer's (after PROXY protocol, which sets the
 * connection's remoteAddress), or, when the peer is one of trustedProxies, the address it appended
 * last to x-forwarded-for (nginx's real_ip with set_real_ip_from; the peer vouches for that hop
 * only). An IPv4-mapped IPv6 address (::ffff:a.b.c.d, a dual-stack listener's) is its IPv4 form, so
 * one client is one key however it connected. Asked only when a rule keyed or judged by address matches.
 */
import { isIP } from 'node:net'
import { equalsLower } from './match.js'

export function clientAddress (remote: string, trusted: boolean, raw: readonly string[]): string {
  let addr = remote
  if (trusted) {
    let last: string | undefined
    for (let i = 0; i < raw.length; i += 2) {
      const n = raw[i]!
      if (n.length === 15 && equalsLower(n, 0, 'x-forwarded-for')) last = raw[i + 1]
    }
    if (last !== undefined) {
      const hop = last.slice(last.lastIndexOf(',') + 1).trim()
      if (isIP(hop) !== 0) addr = hop
    }
  }
  return addr.length > 7 && addr.charCodeAt(0) === 58 /* : */ && addr.startsWith('::ffff:') && addr.includes('.') ? addr.slice(7) : addr
}
