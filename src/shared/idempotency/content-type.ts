/**
 * @module idempotency/content-type
 * The request's content type as the fingerprint sees it. The same bytes as a form and as `text/plain`
 * are two requests (the upstream reads them differently), so the content type is part of the
 * fingerprint; spellings RFC 9110 says are the same are folded, nothing else:
 *  - type and subtype are case-insensitive (§8.3.1): lower-cased;
 *  - parameter names are case-insensitive (§5.6.6): lower-cased; whitespace around `;` and `=` dropped;
 *  - a quoted value equals the same value as a token (§5.6.6): unquoted;
 *  - `charset` values are case-insensitive (§8.3.2): lower-cased. Other values keep their case (a
 *    `boundary` is case-sensitive) and parameters keep their order.
 * A value that does not parse is kept as sent (marked, so it cannot equal a parsed one). Folding too
 * little costs a 422 on a retry spelled differently; folding too much would replay another request's
 * answer, so anything not listed above stays as it is.
 */

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
/** `type/subtype` then `; name=value` pairs (value a token or a quoted-string) */
const MEDIA = /^[ \t]*([!#$%&'*+.^_`|~0-9A-Za-z-]+)\/([!#$%&'*+.^_`|~0-9A-Za-z-]+)[ \t]*((?:;[ \t]*(?:[!#$%&'*+.^_`|~0-9A-Za-z-]+=(?:[!#$%&'*+.^_`|~0-9A-Za-z-]+|"(?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[\t\x20-\x7e\x80-\xff])*"))?[ \t]*)*)$/
const PARAM = /;[ \t]*(?:([!#$%&'*+.^_`|~0-9A-Za-z-]+)=([!#$%&'*+.^_`|~0-9A-Za-z-]+|"(?:[^"\\]|\\.)*"))?[ \t]*/g

/**
 * The normalised content type of a request ('' when it has none). Several Content-Type headers are
 * kept as sent, joined: which one an upstream reads is its own business.
 */
export function normaliseContentType (value: string | undefined): string {
  if (value === undefined) return ''
  const m = MEDIA.exec(value)
  if (m === null) return `raw:${value}`
  let out = `${m[1]!.toLowerCase()}/${m[2]!.toLowerCase()}`
  if (m[3] === '') return out
  for (const p of m[3]!.matchAll(PARAM)) {
    if (p[1] === undefined) continue // an empty `;`
    const name = p[1].toLowerCase()
    let v = p[2]!
    if (v.charCodeAt(0) === 34) v = v.slice(1, -1).replace(/\\(.)/g, '$1')
    if (name === 'charset') v = v.toLowerCase()
    out += `;${name}=${TOKEN.test(v) ? v : JSON.stringify(v)}`
  }
  return out
}

/** JSON bodies are compared by value: `application/json` and any `+json` type (of a normalised content type). */
export function isJsonMediaType (normalised: string): boolean {
  const semi = normalised.indexOf(';')
  const mime = semi < 0 ? normalised : normalised.slice(0, semi)
  return mime === 'application/json' || mime.endsWith('+json')
}

/** Every Content-Type value in a raw header list ([name, value, …]), joined; undefined when none. */
export function contentTypeOf (raw: readonly string[]): string | undefined {
  let value: string | undefined
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i]!
    if (n.length === 12 && n.toLowerCase() === 'content-type') value = value === undefined ? raw[i + 1]! : `${value}, ${raw[i + 1]!}`
  }
  return value
}
