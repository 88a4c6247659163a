/**
 * @module routing/route-table
 * `routes:` compiled at config load into plain fields, matched in order, first match wins. A match
 * reads what the exchange already has (method, path, Host, the raw header list) and allocates
 * nothing: host names are compared in place, case-insensitively, up to the port; path prefixes with
 * startsWith; header names case-insensitively against the raw list.
 */
import type { RouteConfig } from '../../shared/config/schema.js'
import { Compression, type CompressionSettings } from '../policy/compression.js'
import { Redirect } from '../policy/redirect.js'
import { Rewrite } from '../policy/rewrite.js'
import { compileRewrite, type HeaderRewrite } from '../../shared/config/header-rewrite.js'
import type { RoutePool } from './route-pool.js'
import type { HostCounters } from '../upstream/host-counters.js'

/** a route's `route` label: routes[].name, else its index; `default` for the default route (index -1) */
export function routeName (index: number, r?: RouteConfig): string {
  return index < 0 ? 'default' : r?.name ?? String(index)
}

export class Route {
  /** position in `routes` (-1: the default route, when nothing matched) */
  readonly index: number
  /** its `route` metrics label: routes[].name, else its index; `default` for the default route */
  readonly name: string
  /** null on a redirect route (nothing goes upstream) */
  readonly pool: RoutePool | null
  /** its request counters (data/counting), bound when the routing state is built; null: not counted */
  readonly metrics: HostCounters | null
  /** lower-case; exact host */
  private readonly host: string | null
  /** lower-case `.example.com` of `*.example.com` */
  private readonly hostSuffix: string | null
  private readonly pathPrefix: string | null
  private readonly methods: readonly string[] | null
  /** lower-case names and their wanted values (null: present with any value) */
  private readonly headerNames: readonly string[]
  private readonly headerValues: readonly (string | null)[]
  /** characters dropped from the front of the path (stripPrefix) */
  readonly strip: number
  readonly requestHeaders: HeaderRewrite | null
  readonly responseHeaders: HeaderRewrite | null
  /** claylb answers with a Location (data/policy/redirect) */
  readonly redirect: Redirect | null
  /** the path sent upstream, by a regular expression (data/policy/rewrite) */
  readonly rewrite: Rewrite | null
  /** answers compressed by accept-encoding (data/policy/compression): the route's, else the top level's */
  readonly compression: Compression | null
  /** the path sent upstream is not the client's (stripPrefix or rewrite): the one check a request pays */
  readonly pathChanges: boolean

  /** `r` was validated by config/routing (its redirect and rewrite compile) */
  constructor (index: number, pool: RoutePool | null, r?: RouteConfig, compression?: CompressionSettings, metrics: HostCounters | null = null) {
    this.index = index
    this.name = routeName(index, r)
    this.pool = pool
    this.metrics = metrics
    const host = r?.match.host?.toLowerCase().replace(/\.$/, '')
    this.host = host !== undefined && !host.startsWith('*.') ? host : null
    this.hostSuffix = host !== undefined && host.startsWith('*.') ? host.slice(1) : null
    this.pathPrefix = r?.match.pathPrefix ?? null
    this.methods = r?.match.methods ?? null
    const headers = Object.entries(r?.match.headers ?? {})
    this.headerNames = headers.map(([n]) => n.toLowerCase())
    this.headerValues = headers.map(([, v]) => v === true ? null : v)
    this.strip = r?.stripPrefix === true && this.pathPrefix !== null ? this.pathPrefix.length : 0
    this.requestHeaders = compileRewrite(r?.requestHeaders)
    this.responseHeaders = compileRewrite(r?.responseHeaders)
    this.redirect = r?.redirect === undefined ? null : Redirect.compile(r.redirect) as Redirect
    this.rewrite = r?.rewrite === undefined ? null : Rewrite.compile(r.rewrite) as Rewrite
    this.pathChanges = this.strip !== 0 || this.rewrite !== null
    const z = r?.compression ?? compression
    this.compression = z === undefined || !z.enabled || this.redirect !== null ? null : new Compression(z)
  }

  matches (method: string, path: string, host: string, raw: readonly string[]): boolean {
    if (this.methods !== null && !this.methods.includes(method)) return false
    if (this.pathPrefix !== null && !path.startsWith(this.pathPrefix)) return false
    if (this.host !== null || this.hostSuffix !== null) {
      const end = hostEnd(host)
      if (this.host !== null) {
        if (end !== this.host.length || !equalsLower(host, 0, this.host)) return false
      } else {
        const suffix = this.hostSuffix!
        if (end <= suffix.length || !equalsLower(host, end - suffix.length, suffix)) return false
      }
    }
    for (let i = 0; i < this.headerNames.length; i++) if (!hasHeader(raw, this.headerNames[i]!, this.headerValues[i]!)) return false
    return true
  }

  /** the path sent upstream: without the matched prefix when stripPrefix is set ('' → '/'), or rewritten */
  upstreamPath (path: string): string {
    if (this.rewrite !== null) return this.rewrite.apply(path)
    if (this.strip === 0) return path
    const rest = path.slice(this.strip)
    return rest.charCodeAt(0) === 47 /* / */ ? rest : `/${rest}`
  }
}

/** first match wins; the default route (or null: 404) when none does */
export function matchRoute (routes: readonly Route[], fallback: Route | null, method: string, path: string, host: string, raw: readonly string[]): Route | null {
  for (let i = 0; i < routes.length; i++) if (routes[i]!.matches(method, path, host, raw)) return routes[i]!
  return fallback
}

/** where the host name ends in a Host value: before `:port`, after an IPv6 literal's `]`; a trailing dot is left out */
function hostEnd (host: string): number {
  let end: number
  if (host.charCodeAt(0) === 91 /* [ */) end = host.indexOf(']') + 1
  else {
    end = host.indexOf(':')
    if (end < 0) end = host.length
  }
  if (end > 0 && host.charCodeAt(end - 1) === 46 /* . */) end--
  return end
}

/** s[at…] equals `lower` (already lower-case), ASCII letters compared case-insensitively */
function equalsLower (s: string, at: number, lower: string): boolean {
  for (let i = 0; i < lower.length; i++) {
    let c = s.charCodeAt(at + i)
    if (c >= 65 && c <= 90) c |= 0x20
    if (c !== lower.charCodeAt(i)) return false
  }
  return true
}

function hasHeader (raw: readonly string[], lowerName: string, value: string | null): boolean {
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i]!
    if (n.length === lowerName.length && equalsLower(n, 0, lowerName) && (value === null || raw[i + 1] === value)) return true
  }
  return false
}
