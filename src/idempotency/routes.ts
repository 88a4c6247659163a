/**
 * @module idempotency/routes
 * `idempotency.routes` compiled once: method → routes, longest prefix first, matched against the
 * normalised path (route-path.ts), case-insensitively unless the route says `caseSensitive`.
 */
import { normalisePath, normalisePrefix } from './route-path.js'

export interface IdempotentRoute {
  /** "POST /orders", as configured: part of the scope */
  readonly match: string
  readonly method: string
  /** the normalised prefix (lower case unless `caseSensitive`) */
  readonly prefix: string
  readonly required: boolean
  /** the upstream dedupes on `claylb-idempotency-id`: an unknown outcome is forwarded again */
  readonly upstreamDedupes: boolean
  readonly caseSensitive: boolean
  /** set on the one route that stands for "a keyed method, a path that cannot be normalised" */
  readonly unsafePath?: true
}

export interface RouteSpec {
  readonly match: string
  readonly required?: boolean
  readonly upstreamDedupes?: boolean
  readonly caseSensitive?: boolean
}

export class RouteTable {
  private readonly byMethod = new Map<string, IdempotentRoute[]>()
  private readonly unsafe = new Map<string, IdempotentRoute>()

  constructor (routes: readonly RouteSpec[]) {
    for (const r of routes) {
      const sp = r.match.indexOf(' ')
      const method = r.match.slice(0, sp)
      const caseSensitive = r.caseSensitive ?? false
      const prefix = normalisePrefix(r.match.slice(sp + 1))
      const list = this.byMethod.get(method) ?? []
      list.push({ match: r.match, method, prefix: caseSensitive ? prefix : prefix.toLowerCase(), required: r.required ?? false, upstreamDedupes: r.upstreamDedupes ?? false, caseSensitive })
      list.sort((a, b) => b.prefix.length - a.prefix.length)
      this.byMethod.set(method, list)
      this.unsafe.set(method, { match: `${method} (a path that cannot be normalised)`, method, prefix: '', required: true, upstreamDedupes: false, caseSensitive: true, unsafePath: true })
    }
  }

  get size (): number { return this.byMethod.size }

  /**
   * The route of a request, the unsafe-path route when its method is keyed and its path cannot be
   * normalised, or undefined when no route guards it.
   */
  match (method: string, path: string): IdempotentRoute | undefined {
    const list = this.byMethod.get(method)
    if (list === undefined) return undefined
    const norm = normalisePath(path)
    if (norm === null) return this.unsafe.get(method)
    let lower: string | undefined
    for (const r of list) {
      const p = r.caseSensitive ? norm : (lower ??= norm.toLowerCase())
      if (prefixMatches(r.prefix, p)) return r
    }
    return undefined
  }
}

/** `/orders` matches `/orders` and `/orders/7`, not `/ordersx` */
function prefixMatches (prefix: string, path: string): boolean {
  if (!path.startsWith(prefix)) return false
  return prefix === '/' || path.length === prefix.length || path.charCodeAt(prefix.length) === 47
}

/**
 * What the fingerprint names as the request target: the normalised path (folded as the route
 * matches it) and the query as sent.
 */
export function routeTarget (route: IdempotentRoute, path: string): string {
  const norm = normalisePath(path) ?? path
  const q = path.indexOf('?')
  const p = route.caseSensitive ? norm : norm.toLowerCase()
  return q < 0 ? p : p + path.slice(q)
}
