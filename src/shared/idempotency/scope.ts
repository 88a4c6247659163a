/**
 * @module idempotency/scope
 * Whose key is it: a key is scoped by the first of an ordered list of request headers present
 * (`idempotency.scope`; `cookie:<name>` names one cookie), and by nothing else: one key is one
 * operation of that client, whatever route or method it is sent on (core.ts scopeOf). The default,
 * `authorization` then the session cookie, keeps clients apart but changes when a token is refreshed;
 * an auth gateway that sets a verified account header (`[x-account-id]`) keeps an account's keys
 * across refreshes. The header must come from something that verified it: a scope a client can choose
 * (an unverified JWT claim, a header the gateway does not overwrite) lets it read another account's
 * stored answers by reusing its keys.
 */

interface Source {
  /** lower-case header name */
  readonly header: string
  /** set for `cookie:<name>`: that cookie's value */
  readonly cookie?: string
  readonly label: string
}

export function defaultScope (sessionCookie: string): string[] {
  return ['authorization', `cookie:${sessionCookie}`]
}

export class ScopeSources {
  private readonly sources: readonly Source[]

  constructor (entries: readonly string[]) {
    this.sources = entries.map((e) => {
      const lower = e.toLowerCase()
      if (lower.startsWith('cookie:')) return { header: 'cookie', cookie: e.slice(7), label: lower.slice(0, 7) + e.slice(7) }
      return { header: lower, label: lower }
    })
  }

  /** The credential part of the scope: `<source>:<value>` of the first source present, else ''. Raw header list in. */
  credentialOf (rawHeaders: readonly string[]): string {
    for (const s of this.sources) {
      const v = headerValue(rawHeaders, s.header, s.cookie !== undefined)
      if (v === undefined) continue
      if (s.cookie === undefined) return `${s.label}:${v}`
      const c = cookieValue(v, s.cookie)
      if (c !== undefined) return `${s.label}:${c}`
    }
    return ''
  }
}

/** One header's value (repeated headers joined as RFC 9110 says; cookies with `; `), or undefined. */
function headerValue (rawHeaders: readonly string[], name: string, isCookie: boolean): string | undefined {
  let value: string | undefined
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const n = rawHeaders[i]!
    if (n.length !== name.length || n.toLowerCase() !== name) continue
    value = value === undefined ? rawHeaders[i + 1]! : `${value}${isCookie ? '; ' : ', '}${rawHeaders[i + 1]!}`
  }
  return value
}

function cookieValue (header: string, name: string): string | undefined {
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim()
  }
  return undefined
}
