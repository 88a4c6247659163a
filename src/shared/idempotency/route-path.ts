/**
 * @module idempotency/route-path
 * One route, however it is spelled. Routers behind claylb (Express, Fastify, most frameworks) treat
 * `/ORDERS`, `//orders`, `/orders/`, `/%6Frders`, `/./orders`, `/orders;x=1` as `/orders`; if the
 * idempotency layer matched literally, each spelling would reach the app unkeyed (or under another
 * scope) and execute again. So the path is normalised the way those routers read it before a route is
 * matched (the fingerprint does not use that form: fingerprintTarget below):
 *  - percent-encoded unreserved characters (RFC 3986 §2.3) are decoded, other escapes upper-cased;
 *  - `;params` are dropped from every segment;
 *  - empty segments (`//`, a trailing `/`) and `.` are dropped, `..` removes the segment before it;
 *  - case is folded per route (`caseSensitive: false`, the default), by the route table.
 * Escapes a router may decode into structure (`%2F` `/`, `%5C` `\`) or into nothing sane (`%00`,
 * malformed `%`) cannot be normalised safely: the caller refuses the request (400), it is never
 * forwarded unkeyed.
 */

/** unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~" */
const UNRESERVED = new Uint8Array(128)
for (let c = 0; c < 128; c++) {
  const ch = String.fromCharCode(c)
  if (/[A-Za-z0-9\-._~]/.test(ch)) UNRESERVED[c] = 1
}

/** bytes that, decoded, would change the path's structure or end it */
const UNSAFE_DECODED = new Set([0x2f /* / */, 0x5c /* \ */, 0x00])

function hexValue (c: number): number {
  if (c >= 48 && c <= 57) return c - 48
  if (c >= 65 && c <= 70) return c - 55
  if (c >= 97 && c <= 102) return c - 87
  return -1
}

/**
 * Already normal: only lower-case letters, digits, `-`, `_` and single slashes, no trailing slash.
 * Most requests on a keyed route look like this and pay one scan, no allocation.
 */
function isPlain (path: string, end: number): boolean {
  if (end === 0 || path.charCodeAt(0) !== 47) return false
  let prev = 0
  for (let i = 0; i < end; i++) {
    const c = path.charCodeAt(i)
    if (c === 47) {
      if (prev === 47) return false
    } else if (!((c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 45 || c === 95)) return false
    prev = c
  }
  return end === 1 || prev !== 47
}

/**
 * The normalised path (no query, case kept: folding is per route), or null when it cannot be
 * normalised safely. A path that is not origin-form (`*`) is returned as it is.
 */
export function normalisePath (path: string): string | null {
  const q = path.indexOf('?')
  const end = q < 0 ? path.length : q
  if (isPlain(path, end)) return q < 0 ? path : path.slice(0, end)
  if (path.charCodeAt(0) !== 47) return path.slice(0, end)
  const out: string[] = []
  let seg = ''
  let inParams = false
  const close = (): void => {
    if (seg === '..') out.pop()
    else if (seg !== '' && seg !== '.') out.push(seg)
    seg = ''
    inParams = false
  }
  for (let i = 1; i < end; i++) {
    const c = path.charCodeAt(i)
    if (c === 47) { close(); continue }
    if (inParams) continue
    if (c === 59) { inParams = true; continue } // ;params to the end of the segment
    if (c !== 37) { seg += path[i]; continue }
    const hi = hexValue(path.charCodeAt(i + 1))
    const lo = hexValue(path.charCodeAt(i + 2))
    if (hi < 0 || lo < 0) return null
    const byte = hi * 16 + lo
    if (UNSAFE_DECODED.has(byte)) return null
    seg += byte < 128 && UNRESERVED[byte] === 1 ? String.fromCharCode(byte) : `%${path[i + 1]!.toUpperCase()}${path[i + 2]!.toUpperCase()}`
    i += 2
  }
  close()
  return `/${out.join('/')}`
}

/**
 * The request target as the fingerprint names it: the path and query AS SENT, with only the
 * rewrites RFC 3986 §6.2.2 says never change which resource a URI names: escapes of unreserved
 * characters decoded (`%6F` → `o`), other escapes' hex upper-cased (`%c3` → `%C3`). Never case
 * folding, dot segments, empty segments or `;params`: `/orders/ch_AbC` and `/orders/ch_abc` may be
 * two resources, and a replay of one for the other would tell the client an operation ran that did
 * not. A spelling a router reads as the same resource, under the same key, is a 422 (never a second
 * execution: the key alone names the record).
 */
export function fingerprintTarget (target: string): string {
  const q = target.indexOf('?')
  const end = q < 0 ? target.length : q
  const pct = target.indexOf('%')
  if (pct < 0 || pct >= end) return target
  let out = target.slice(0, pct)
  for (let i = pct; i < end; i++) {
    const c = target.charCodeAt(i)
    const hi = c === 37 ? hexValue(target.charCodeAt(i + 1)) : -1
    const lo = c === 37 ? hexValue(target.charCodeAt(i + 2)) : -1
    if (hi < 0 || lo < 0) { out += target[i]; continue }
    const byte = hi * 16 + lo
    out += byte < 128 && UNRESERVED[byte] === 1 ? String.fromCharCode(byte) : `%${target[i + 1]!.toUpperCase()}${target[i + 2]!.toUpperCase()}`
    i += 2
  }
  return q < 0 ? out : out + target.slice(q)
}

/** The normalised route prefix of a configured `match` (at start-up: refuses what cannot be normalised). */
export function normalisePrefix (prefix: string): string {
  const n = normalisePath(prefix)
  if (n === null) throw new Error(`idempotency route prefix ${prefix} cannot be normalised`)
  return n
}
