/**
 * @module idempotency/routes
 * `idempotency.routes` compiled once: method → routes, longest prefix first, matched against the
 * normalised path (route-path.ts), case-insensitively unless the route says `caseSensitive`. A
 * route's pattern is normalised with the same function as request paths, so `POST /orders` and
 * `POST /orders/` are one route. Routes only decide WHICH requests are keyed: the record is the
 * scope's and the key's alone (one key, one operation), whatever route a request arrives on.
 */
import { IDEMPOTENCY_DEFAULTS } from '../defaults.js'
import { normalisePath, normalisePrefix } from './route-path.js'

export interface IdempotentRoute {
  /** "POST /orders", normalised (for messages and logs) */
  readonly match: string
  readonly method: string
  /** the normalised prefix (lower case unless `caseSensitive`) */
  readonly prefix: string
  readonly required: boolean
  /** the upstream dedupes on `claylb-idempotency-id`: an unknown outcome is forwarded again */
  readonly upstreamDedupes: boolean
  readonly caseSensitive: boolean
  /** the largest body a keyed request may have here (413 above) */
  readonly maxBodyBytes: number
  /** set on the one route that stands for "a keyed method, a path that cannot be normalised" */
  readonly unsafePath?: true
}

export interface RouteSpec {
  readonly match: string
  readonly required?: boolean
  readonly upstreamDedupes?: boolean
  readonly caseSensitive?: boolean
  /** overrides the table's default */
  readonly maxBodyBytes?: number
}

/** "METHOD /prefix" → its method and normalised prefix (case kept); throws when it cannot be normalised */
export function parseRouteMatch (match: string): { method: string, prefix: string } {
  const sp = match.indexOf(' ')
  return { method: match.slice(0, sp), prefix: normalisePrefix(match.slice(sp + 1)) }
}

export class RouteTable {
  private readonly byMethod = new Map<string, IdempotentRoute[]>()
  private readonly unsafe = new Map<string, IdempotentRoute>()

  constructor (routes: readonly RouteSpec[], maxBodyBytes: number = IDEMPOTENCY_DEFAULTS.maxBodyBytes) {
    for (const r of routes) {
      const caseSensitive = r.caseSensitive ?? false
      const { method, prefix: p } = parseRouteMatch(r.match)
      const prefix = caseSensitive ? p : p.toLowerCase()
      const list = this.byMethod.get(method) ?? []
      list.push({ match: `${method} ${prefix}`, method, prefix, required: r.required ?? false, upstreamDedupes: r.upstreamDedupes ?? false, caseSensitive, maxBodyBytes: r.maxBodyBytes ?? maxBodyBytes })
      list.sort((a, b) => b.prefix.length - a.prefix.length)
      this.byMethod.set(method, list)
      this.unsafe.set(method, unsafeRoute(method))
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

/** The route standing for "a keyed method, a path that cannot be normalised": always refused. */
export function unsafeRoute (method: string): IdempotentRoute {
  return { match: `${method} (a path that cannot be normalised)`, method, prefix: '', required: true, upstreamDedupes: false, caseSensitive: true, maxBodyBytes: 0, unsafePath: true }
}
