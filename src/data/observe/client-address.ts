/**
 * @module data/observe/client-address
 * The client's address as the log and traces tell it: the peer's, unless the peer is a trusted
 * forwarder (trustedProxies); then X-Forwarded-For is read from the right, past every trusted hop,
 * and the first address not trusted is the client (nginx's real_ip_recursive on). Read only when a
 * line or span asks for it.
 */
import type { TrustedProxies } from '../routing/trusted-proxies.js'

export function clientAddress (raw: readonly string[], peer: string, trusted: TrustedProxies): string {
  let hops = ''
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length === 15 && raw[i]!.toLowerCase() === 'x-forwarded-for') hops = hops === '' ? raw[i + 1]! : `${hops},${raw[i + 1]!}`
  }
  if (hops === '') return peer
  const list = hops.split(',')
  for (let i = list.length - 1; i >= 0; i--) {
    const a = list[i]!.trim()
    if (a === '') continue
    if (i === 0 || !trusted.trusts(a)) return a
  }
  return peer
}
