/**
 * @module routing/route-table
 * `routes:` compiled at config load into plain fields, matched in order, first match wins. The
 * matching itself is data/policy/match.ts's RequestMatch (shared with rate limits and access rules):
 * allocation-free.
 */
import type { RouteConfig } from '../../shared/config/schema.js'
import { Compression, type CompressionSettings } from '../policy/compression.js'
import { Redirect } from '../../shared/policy/redirect.js'
import { Rewrite } from '../../shared/policy/rewrite.js'
import { compileRewrite, type HeaderRewrite } from '../../shared/config/header-rewrite.js'
import type { RoutePool } from './route-pool.js'
import type { HostCounters } from '../upstream/host-counters.js'
import { RequestMatch } from '../policy/match.js'

/** a route's `route` label: routes[].name, else its index; `default` for the default route (index -1) */
export function routeName (index: number, r?: RouteConfig): string {
  return index < 0 ? 'default' : r?.name ?? String(index)
}

export class Route extends RequestMatch {
  /** position in `routes` (-1: the default route, when nothing matched) */
  readonly index: number
  /** its `route` metrics label: routes[].name, else its index; `default` for the default route */
  readonly name: string
  /** null on a redirect route (nothing goes upstream) */
  readonly pool: RoutePool | null
  /** its request counters (data/counting), bound when the routing state is built; null: not counted */
  readonly metrics: HostCounters | null
  /** characters dropped from the front of the path (stripPrefix) */
  readonly strip: number
  readonly requestHeaders: HeaderRewrite | null
  readonly responseHeaders: HeaderRewrite | null
  /** claylb answers with a Location (shared/policy/redirect) */
  readonly redirect: Redirect | null
  /** the path sent upstream, by a regular expression (shared/policy/rewrite) */
  readonly rewrite: Rewrite | null
  /** answers compressed by accept-encoding (data/policy/compression): the route's, else the top level's */
  readonly compression: Compression | null
  /** the path sent upstream is not the client's (stripPrefix or rewrite): the one check a request pays */
  readonly pathChanges: boolean

  /** `r` was validated by config/routing (its redirect and rewrite compile) */
  constructor (index: number, pool: RoutePool | null, r?: RouteConfig, compression?: CompressionSettings, metrics: HostCounters | null = null) {
    super(r?.match)
    this.index = index
    this.name = routeName(index, r)
    this.pool = pool
    this.metrics = metrics
    this.strip = r?.stripPrefix === true && this.pathPrefix !== null ? this.pathPrefix.length : 0
    this.requestHeaders = compileRewrite(r?.requestHeaders)
    this.responseHeaders = compileRewrite(r?.responseHeaders)
    this.redirect = r?.redirect === undefined ? null : Redirect.compile(r.redirect) as Redirect
    this.rewrite = r?.rewrite === undefined ? null : Rewrite.compile(r.rewrite) as Rewrite
    this.pathChanges = this.strip !== 0 || this.rewrite !== null
    const z = r?.compression ?? compression
    this.compression = z === undefined || !z.enabled || this.redirect !== null ? null : new Compression(z)
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

