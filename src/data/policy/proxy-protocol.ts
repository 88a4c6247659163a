/**
 * @module data/policy/proxy-protocol
 * The PROXY protocol (HAProxy's, v1 text and v2 binary) on the listener (`listen.proxyProtocol`):
 * an L4 balancer in front writes the client's address before the first byte of the connection (and
 * before a TLS handshake), so logs, access rules, consistent hashing on `ip` and x-forwarded-for see
 * the real client, not the balancer.
 *
 * Parsing is incremental (a header split across reads is waited for) and bounded: a v1 line is at
 * most 107 bytes, a v2 header at most V2_MAX_BYTES; past either, or on any malformation, the
 * connection is closed. Only peers in trustedProxies may send one; a header from anyone else closes
 * the connection (it would let a client claim any address). LOCAL (v2) and UNKNOWN (v1), which a
 * balancer's own health checks use, keep the peer's address.
 */
import { isIPv4, isIPv6, type Socket } from 'node:net'
import { tlsParent } from '../../shared/node-internals.js'

/** the longest v1 line, CRLF included (the spec's bound) */
export const V1_MAX_BYTES = 107
/** the longest v2 header read: 16 bytes and addresses with TLVs up to this (HAProxy sends a few) */
export const V2_MAX_BYTES = 16 + 2048

const V1_PREFIX = Buffer.from('PROXY ', 'latin1')
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a])

export type ProxyHeader =
  /** `address`: the client's (PROXY), or undefined: keep the peer's (LOCAL, UNKNOWN, AF_UNIX, unspec) */
  | { readonly done: true, readonly consumed: number, readonly address: string | undefined }
  | { readonly done: false, readonly error: string | undefined }

const MORE: ProxyHeader = { done: false, error: undefined }
const fail = (error: string): ProxyHeader => ({ done: false, error })

/** a header at the start of `buf`: parsed, more bytes needed (error undefined), or malformed */
export function parseProxyHeader (buf: Buffer): ProxyHeader {
  if (buf.length === 0) return MORE
  if (buf[0] === 0x50) return parseV1(buf)
  if (buf[0] === 0x0d) return parseV2(buf)
  return fail('no PROXY protocol header')
}

/** true while `buf` may still become `sig`'s prefix */
function prefixOk (buf: Buffer, sig: Buffer): boolean {
  const n = Math.min(buf.length, sig.length)
  for (let i = 0; i < n; i++) if (buf[i] !== sig[i]) return false
  return true
}

const PORT = /^(?:0|[1-9]\d{0,4})$/

function parseV1 (buf: Buffer): ProxyHeader {
  if (!prefixOk(buf, V1_PREFIX)) return fail('no PROXY protocol header')
  const end = buf.indexOf('\r\n', 0, 'latin1')
  if (end < 0 || end + 2 > V1_MAX_BYTES) return buf.length >= V1_MAX_BYTES ? fail('PROXY v1 line longer than 107 bytes') : MORE
  const parts = buf.toString('latin1', V1_PREFIX.length, end).split(' ')
  const consumed = end + 2
  if (parts[0] === 'UNKNOWN') return { done: true, consumed, address: undefined }
  if (parts.length !== 5 || (parts[0] !== 'TCP4' && parts[0] !== 'TCP6')) return fail('malformed PROXY v1 line')
  const [proto, src, dst, sport, dport] = parts as [string, string, string, string, string]
  const isIp = proto === 'TCP4' ? isIPv4 : isIPv6
  if (!isIp(src) || !isIp(dst)) return fail('malformed PROXY v1 address')
  if (!PORT.test(sport) || !PORT.test(dport) || Number(sport) > 65535 || Number(dport) > 65535) return fail('malformed PROXY v1 port')
  return { done: true, consumed, address: src }
}

function parseV2 (buf: Buffer): ProxyHeader {
  if (!prefixOk(buf, V2_SIGNATURE)) return fail('no PROXY protocol header')
  if (buf.length < 16) return MORE
  const verCmd = buf[12]!
  if (verCmd >> 4 !== 2) return fail('PROXY v2: unsupported version')
  const cmd = verCmd & 0x0f
  if (cmd > 1) return fail('PROXY v2: unknown command')
  const len = buf.readUInt16BE(14)
  const consumed = 16 + len
  if (consumed > V2_MAX_BYTES) return fail(`PROXY v2 header longer than ${V2_MAX_BYTES} bytes`)
  if (buf.length < consumed) return MORE
  // LOCAL: the balancer speaking for itself (its health check)
  if (cmd === 0) return { done: true, consumed, address: undefined }
  const family = buf[13]! >> 4
  const transport = buf[13]! & 0x0f
  if (transport > 1) return fail('PROXY v2: not a stream transport')
  if (family === 1) {
    if (len < 12) return fail('PROXY v2: address block too short')
    return { done: true, consumed, address: `${buf[16]}.${buf[17]}.${buf[18]}.${buf[19]}` }
  }
  if (family === 2) {
    if (len < 36) return fail('PROXY v2: address block too short')
    const groups: string[] = []
    for (let i = 0; i < 8; i++) groups.push(buf.readUInt16BE(16 + 2 * i).toString(16))
    return { done: true, consumed, address: new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1) }
  }
  // AF_UNSPEC, AF_UNIX: no address to take over
  if (family === 0 || family === 3) return { done: true, consumed, address: undefined }
  return fail('PROXY v2: unknown address family')
}

/** the client address a PROXY header gave each accepted socket (the raw one: a TLS socket is looked up by its _parent) */
const clients = new WeakMap<Socket, string>()

/** the client's address: the PROXY header's, else the peer's */
export function clientAddress (socket: Socket): string {
  return clients.get(socket) ?? clientOfParent(socket) ?? socket.remoteAddress ?? ''
}

function clientOfParent (socket: Socket): string | undefined {
  const parent = tlsParent(socket)
  return parent === undefined ? undefined : clients.get(parent)
}

/**
 * Read a PROXY header from a new connection (of a trusted peer: the caller checked), then hand it on
 * with the bytes read past it; a malformed, missing, truncated or slow header (past `timeoutMs`)
 * closes the connection. The socket is left paused, with `rest` still to be processed by the next owner.
 */
export function readProxyHeader (socket: Socket, timeoutMs: number, next: (socket: Socket, rest: Buffer | undefined) => void): void {
  let got: Buffer | undefined
  const timer = setTimeout(() => socket.destroy(), timeoutMs)
  const finish = (): void => {
    clearTimeout(timer)
    socket.off('readable', onReadable)
    socket.off('end', onEnd)
  }
  const onEnd = (): void => {
    finish()
    socket.destroy()
  }
  const onReadable = (): void => {
    let chunk: Buffer | null
    while ((chunk = socket.read() as Buffer | null) !== null) {
      got = got === undefined ? chunk : Buffer.concat([got, chunk])
      const h = parseProxyHeader(got)
      if (!h.done) {
        if (h.error === undefined) continue
        finish()
        socket.destroy()
        return
      }
      finish()
      if (h.address !== undefined) clients.set(socket, h.address)
      next(socket, got.length > h.consumed ? got.subarray(h.consumed) : undefined)
      return
    }
  }
  socket.on('readable', onReadable)
  socket.on('end', onEnd)
  socket.on('error', () => socket.destroy())
}
