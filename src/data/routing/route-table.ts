/**
 * @module routing/route-table
 * `routes:` compiled at config load into plain fields, matched in order, first match wins. The
 * matching itself is data/policy/match.ts's RequestMatch (shared with rate limits and access rules):
 * allocation-free.
 */
import type { RouteConfig } from '../../shared/config/schema.js'
import { compileRewrite, type HeaderRewrite } from '../../shared/config/header-rewrite.js'
import type { RoutePool } from './route-pool.js'
import { RequestMatch } from '../policy/match.js'

export class Route extends RequestMatch {
  /** position in `routes` (-1: the default route, when nothing matched) */
  readonly index: number
  readonly pool: RoutePool
  /** characters dropped from the front of the path (stripPrefix) */
  readonly strip: number
  readonly requestHeaders: HeaderRewrite | null
  readonly responseHeaders: HeaderRewrite | null

  constructor (index: number, pool: RoutePool, r?: RouteConfig) {
    super(r?.match)
    this.index = index
    this.pool = pool
    this.strip = r?.stripPrefix === true && this.pathPrefix !== null ? this.pathPrefix.length : 0
    this.requestHeaders = compileRewrite(r?.requestHeaders)
    this.responseHeaders = compileRewrite(r?.responseHeaders)
  }

  /** the path sent upstream: without the matched prefix when stripPrefix is set ('' → '/') */
  upstreamPath (path: string): string {
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

