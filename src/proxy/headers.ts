/**
 * @module proxy/headers
 * Every header rule of the proxy, in order, in one place. Works on raw header arrays
 * ([name, value, name, value, …]) so no header object is ever built on the hot path.
 *
 * Order matters: hop-by-hop headers and the names listed in `Connection` are removed FIRST, then the
 * proxy adds its own; so `Connection: x-forwarded-for` cannot remove the header the proxy adds.
 */

/**
 * RFC 9110 §7.6.1 hop-by-hop headers, plus the ones undici refuses in a request (`expect`) and the
 * credentials meant for this proxy itself. Both directions.
 */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade',
  'expect', 'proxy-authorization', 'proxy-authenticate', 'http2-settings',
])

/** names a client may list in Connection that the proxy still keeps: they frame or route the message */
const NEVER_CONNECTION_STRIPPED = new Set(['host', 'content-length'])

export interface RequestHeaderInfo {
  /** the outgoing header list for undici */
  headers: string[]
  /** a body follows (content-length > 0 or transfer-encoding) */
  hasBody: boolean
  /** declared content-length, -1 when absent (chunked or none) */
  contentLength: number
  /** the client's Host */
  host: string
  /**
   * Transfer-Encoding names a coding besides chunked (`gzip, chunked`): the proxy de-chunks and
   * re-frames the body, so it cannot pass that coding on (RFC 9112 §6.1: 501).
   */
  otherCoding: boolean
}

/** Add the names listed in one Connection value to `into` (lower case); keep-alive/close list nothing to strip. */
export function addConnectionTokens (value: string, into: Set<string> | null): Set<string> | null {
  // the overwhelmingly common values list nothing: skip the split
  if (value === 'keep-alive' || value === 'close' || value === 'Keep-Alive' || value === 'Close') return into
  for (const t of value.split(',')) {
    const name = t.trim().toLowerCase()
    if (name && name !== 'close' && name !== 'keep-alive' && !NEVER_CONNECTION_STRIPPED.has(name)) (into ??= new Set()).add(name)
  }
  return into
}

/** Remove listed names from a flat [name, value, …] list (rare: only when Connection lists names). */
function withoutListed (list: string[], listed: Set<string>, from = 0, to = list.length): string[] {
  const out = list.slice(0, from)
  for (let i = from; i < to; i += 2) {
    if (!listed.has(list[i]!.toLowerCase())) out.push(list[i]!, list[i + 1]!)
  }
  for (let i = to; i < list.length; i++) out.push(list[i]!)
  return out
}

/**
 * Request pass: client raw headers → upstream headers, in one pass over the raw list.
 * 1. drop hop-by-hop and Connection-listed names; 2. append x-forwarded-for; 3. set x-forwarded-proto/-host.
 */
export function upstreamRequestHeaders (raw: readonly string[], clientIp: string, proto: string): RequestHeaderInfo {
  let out: string[] = []
  let listed: Set<string> | null = null
  let xff: string | undefined
  let host = ''
  let contentLength = -1
  let chunked = false
  let otherCoding = false
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!
    const value = raw[i + 1]!
    const lower = name.toLowerCase()
    if (HOP_BY_HOP.has(lower)) {
      if (lower === 'transfer-encoding') {
        chunked = true
        // Node's parser already refused every value that does not end in chunked
        if (value.trim().toLowerCase() !== 'chunked') otherCoding = true
      } else if (lower === 'connection') listed = addConnectionTokens(value, listed)
      continue
    }
    switch (lower) {
      case 'x-forwarded-for':
        xff = xff === undefined ? value : `${xff}, ${value}`
        continue
      case 'x-forwarded-proto':
      case 'x-forwarded-host':
        continue
      case 'host':
        host = value
        break
      case 'content-length':
        contentLength = Number(value)
        break
    }
    out.push(name, value)
  }
  if (listed !== null) {
    // Connection may come after the names it lists, so they are removed once the whole list is known
    out = withoutListed(out, listed)
    if (listed.has('x-forwarded-for')) xff = undefined
  }
  out.push('x-forwarded-for', xff === undefined ? clientIp : `${xff}, ${clientIp}`)
  out.push('x-forwarded-proto', proto)
  if (host) out.push('x-forwarded-host', host)
  return { headers: out, hasBody: chunked || contentLength > 0, contentLength: chunked ? -1 : contentLength, host, otherCoding }
}

/**
 * Response pass: undici raw headers (Buffers) → a flat list for `res.writeHead`.
 * Drops hop-by-hop and Connection-listed names; everything else passes byte for byte.
 */
export function downstreamResponseHeaders (raw: readonly Buffer[]): string[] {
  let out: string[] = []
  let listed: Set<string> | null = null
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1')
    const lower = name.toLowerCase()
    if (HOP_BY_HOP.has(lower)) {
      if (lower === 'connection') listed = addConnectionTokens(raw[i + 1]!.toString('latin1'), listed)
      continue
    }
    out.push(name, raw[i + 1]!.toString('latin1'))
  }
  if (listed !== null) out = withoutListed(out, listed)
  return out
}

const IDEMPOTENT_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE'])

export function isIdempotentMethod (method: string): boolean {
  return IDEMPOTENT_METHODS.has(method)
}

/**
 * A Host value a proxy may route on and copy into `x-forwarded-host` (RFC 9110 §7.2, RFC 3986 §3.2.2):
 * one `host[:port]`, no list, space, slash, userinfo or non-ASCII, a port of at most 65535.
 */
const HOST_RE = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+;=%]+)(?::(\d{1,5}))?$/

export function validHost (value: string): boolean {
  const m = HOST_RE.exec(value)
  if (m === null) return false
  return m[1] === undefined || Number(m[1]) <= 65535
}
