/**
 * @module proxy/headers
 * Every header rule of the proxy, in order, in one place. Works on raw header arrays
 * ([name, value, name, value, …]) so no header object is ever built on the hot path.
 *
 * Order matters: hop-by-hop headers and the names listed in `Connection` are removed FIRST, then the
 * proxy adds its own; so `Connection: x-forwarded-for` cannot remove the header the proxy adds.
 */

/**
 * RFC 9110 §7.6.1 hop-by-hop headers, plus `expect` (an expectation is for the next hop only, RFC 9110 §10.1.1) and the
 * credentials meant for this proxy itself. Both directions.
 */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade',
  'expect', 'proxy-authorization', 'proxy-authenticate', 'http2-settings',
])

/** names a client may list in Connection that the proxy still keeps: they frame or route the message */
const NEVER_CONNECTION_STRIPPED = new Set(['host', 'content-length'])

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

/**
 * The list without the fields whose name has an `_` (nginx's `underscores_in_headers off`): a CGI or
 * WSGI app reads `X_Forwarded_For` and `X-Forwarded-For` as the same HTTP_X_FORWARDED_FOR, so one
 * would pass around the rules for the other. `raw` itself when none has one (no copy).
 */
export function withoutUnderscores (raw: string[]): string[] {
  let i = 0
  while (i < raw.length && raw[i]!.indexOf('_') < 0) i += 2
  if (i >= raw.length) return raw
  const out = raw.slice(0, i)
  for (; i < raw.length; i += 2) if (raw[i]!.indexOf('_') < 0) out.push(raw[i]!, raw[i + 1]!)
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
