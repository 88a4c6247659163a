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
const HOP_BY_HOP = new Set([
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
}

function lowerName (name: string): string {
  // rawHeaders keep the client's spelling; most clients send lower case already
  return name.toLowerCase()
}

/** Collect the names listed in Connection headers (lower case), or null when there are none. */
function connectionTokens (raw: readonly string[], isConnection: (n: string) => boolean): Set<string> | null {
  let tokens: Set<string> | null = null
  for (let i = 0; i < raw.length; i += 2) {
    if (!isConnection(raw[i]!)) continue
    for (const t of raw[i + 1]!.split(',')) {
      const name = t.trim().toLowerCase()
      if (name && !NEVER_CONNECTION_STRIPPED.has(name)) (tokens ??= new Set()).add(name)
    }
  }
  return tokens
}

const isConnectionName = (n: string): boolean => n.length === 10 && n.toLowerCase() === 'connection'

/**
 * Request pass: client raw headers → upstream headers.
 * 1. drop hop-by-hop and Connection-listed names; 2. append x-forwarded-for; 3. set x-forwarded-proto/-host.
 */
export function upstreamRequestHeaders (raw: readonly string[], clientIp: string, proto: string): RequestHeaderInfo {
  const listed = connectionTokens(raw, isConnectionName)
  const out: string[] = []
  let xff: string | undefined
  let host = ''
  let contentLength = -1
  let chunked = false
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!
    const value = raw[i + 1]!
    const lower = lowerName(name)
    if (HOP_BY_HOP.has(lower)) {
      if (lower === 'transfer-encoding') chunked = true
      continue
    }
    if (listed !== null && listed.has(lower)) continue
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
  out.push('x-forwarded-for', xff === undefined ? clientIp : `${xff}, ${clientIp}`)
  out.push('x-forwarded-proto', proto)
  if (host) out.push('x-forwarded-host', host)
  return { headers: out, hasBody: chunked || contentLength > 0, contentLength: chunked ? -1 : contentLength, host }
}

const isConnectionBuf = (n: string): boolean => n.length === 10 && n.toLowerCase() === 'connection'

/**
 * Response pass: undici raw headers (Buffers) → a flat list for `res.writeHead`.
 * Drops hop-by-hop and Connection-listed names; everything else passes byte for byte.
 */
export function downstreamResponseHeaders (raw: readonly Buffer[], extra?: readonly string[]): string[] {
  const out: string[] = []
  let hasConnection = false
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1')
    const lower = lowerName(name)
    if (lower === 'connection') hasConnection = true
    if (HOP_BY_HOP.has(lower)) continue
    out.push(name, raw[i + 1]!.toString('latin1'))
  }
  let result = out
  if (hasConnection) {
    const strs: string[] = raw.map((b) => b.toString('latin1'))
    const listed = connectionTokens(strs, isConnectionBuf)
    if (listed !== null) {
      result = []
      for (let i = 0; i < out.length; i += 2) {
        if (!listed.has(lowerName(out[i]!))) result.push(out[i]!, out[i + 1]!)
      }
    }
  }
  if (extra) for (const e of extra) result.push(e)
  return result
}

const IDEMPOTENT_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE'])

export function isIdempotentMethod (method: string): boolean {
  return IDEMPOTENT_METHODS.has(method)
}
