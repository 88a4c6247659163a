/**
 * @module shared/policy/redirect
 * A route's `redirect: { to, status }`: claylb answers itself with a Location, no upstream is picked
 * (nginx's `return 308 https://$host$request_uri`, HAProxy's `http-request redirect`, Envoy's
 * `redirect` route action). `to` is compiled once at load into a template; a request fills it.
 */
import { fill, parseTemplate, type Template } from './template.js'

export const REDIRECT_PLACEHOLDERS = ['scheme', 'host', 'path', 'query'] as const

export class Redirect {
  private constructor (
    readonly status: number,
    private readonly to: Template,
    /** `to` has its own `?`: the request's query is not appended */
    private readonly ownQuery: boolean,
  ) {}

  /** the compiled redirect, or what is wrong with `to` (the caller adds the key's path) */
  static compile (r: { to: string, status: number }): Redirect | string {
    const t = parseTemplate(r.to, (n) => (REDIRECT_PLACEHOLDERS as readonly string[]).indexOf(n))
    if (typeof t === 'string') return `unknown placeholder ${t} (known: ${REDIRECT_PLACEHOLDERS.map((p) => `{${p}}`).join(', ')})`
    const sample = fill(t, ['https', 'example.com', '/p', 'q=1'])
    if (!sample.startsWith('/') || sample.startsWith('//')) {
      try {
        const u = new URL(sample)
        if (u.protocol !== 'http:' && u.protocol !== 'https:') return `must be an http(s) URL or a path starting with /, got ${JSON.stringify(r.to)}`
      } catch {
        return `must be an http(s) URL or a path starting with /, got ${JSON.stringify(r.to)}`
      }
    }
    if (/[\s\x00-\x1f\x7f]/.test(r.to)) return 'must not contain spaces or control characters'
    return new Redirect(r.status, t, r.to.includes('?'))
  }

  /**
   * The Location for a request. `target`: its path and query as received (origin-form); `host`: its
   * Host header (the port is left out of {host}, as nginx's $host).
   */
  location (scheme: string, host: string, target: string): string {
    const q = target.indexOf('?')
    const path = q < 0 ? target : target.slice(0, q)
    const query = q < 0 ? '' : target.slice(q + 1)
    const out = fill(this.to, [scheme, hostName(host), path, query])
    return this.ownQuery || q < 0 ? out : `${out}?${query}`
  }
}

/** the Host value without its port (an IPv6 literal keeps its brackets) */
function hostName (host: string): string {
  if (host.charCodeAt(0) === 91 /* [ */) return host.slice(0, host.indexOf(']') + 1)
  const colon = host.indexOf(':')
  return colon < 0 ? host : host.slice(0, colon)
}
