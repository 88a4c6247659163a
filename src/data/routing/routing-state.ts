/**
 * @module routing/routing-state
 * What a request is routed by, as one immutable value: the compiled routes, the pools they point to,
 * the default route, the trusted forwarders and the policies (access rules, rate limits). The engine holds one reference to it; a reload
 * builds a new one and swaps that reference, so a request sees the old state or the new one, never
 * a mix. Built from a plain config and the pools' clusters (their lasting hosts), nothing else.
 */
import type { Config } from '../../shared/config/schema.js'
import { DEFAULT_POOL, WORKERS_POOL, hasUpstreams } from '../../shared/config/routing.js'
import type { RetryTally } from '../upstream/retry-policy.js'
import type { Cluster } from '../upstream/cluster.js'
import type { HostCounters } from '../upstream/host-counters.js'
import type { PoolLimitSettings } from './pool-limits.js'
import { RoutePool, poolKey, type RoutePoolOptions } from './route-pool.js'
import { matchRoute, Route, routeName } from './route-table.js'
import { TrustedProxies } from './trusted-proxies.js'
import type { Policy } from '../policy/policy.js'

export class RoutingState {
  constructor (
    readonly routes: readonly Route[],
    /** where a request no route matches goes; null: 404 */
    readonly fallback: Route | null,
    readonly pools: ReadonlyMap<string, RoutePool>,
    readonly trusted: TrustedProxies,
    /** access rules and rate limits (data/policy); null: none configured, nothing to pay */
    readonly policy: Policy | null = null,
  ) {}

  /** the route of one request (allocation-free) */
  match (method: string, path: string, host: string, raw: readonly string[]): Route | null {
    return matchRoute(this.routes, this.fallback, method, path, host, raw)
  }

  /** a state with one pool and no routes (tests, and an engine built without a config) */
  static single (pool: RoutePool): RoutingState {
    return new RoutingState([], new Route(-1, pool), new Map([[pool.name, pool]]), new TrustedProxies([]))
  }
}

/**
 * The state for `config`, given each pool's cluster by name. A pool whose settings did not change
 * keeps its RoutePool of `previous` (its deadline lists and retry budget carry on).
 */
/** where a route's counters come from (data/counting/counters.ts) */
export interface RouteCounterSource {
  routeCounters (route: string, pool: string): HostCounters
}

export function buildRoutingState (config: Config, clusters: (name: string) => Cluster | undefined, tally: RetryTally, previous?: RoutingState, policy: Policy | null = null,
  /** each route's counters by its name and pool (data/counting), bound here once, never looked up per request */
  counters?: RouteCounterSource): RoutingState {
  const pools = new Map<string, RoutePool>()
  const add = (name: string, cluster: Cluster | undefined, s: Pick<Config, 'balancer' | 'retry' | 'timeouts'> & { limits: PoolLimitSettings }): void => {
    if (cluster === undefined) return
    const o: RoutePoolOptions = { name, cluster, balancer: s.balancer, retry: s.retry, timeouts: s.timeouts, limits: s.limits, tally }
    const old = previous?.pools.get(name)
    pools.set(name, old !== undefined && old.cluster === cluster && old.key === poolKey(o) ? old : new RoutePool(o))
  }
  const workers = config.workers.count > 0
  add(DEFAULT_POOL, hasUpstreams(config) ? clusters(DEFAULT_POOL) : workers ? clusters(WORKERS_POOL) : undefined, config)
  if (workers) add(WORKERS_POOL, clusters(WORKERS_POOL), config)
  for (const [name, p] of Object.entries(config.pools)) add(name, clusters(name), p)
  // a redirect route has no pool: its counters go under pool ''
  const bound = (i: number, pool: string, r?: Config['routes'][number]): HostCounters | null => counters === undefined ? null : counters.routeCounters(routeName(i, r), pool)
  const routes = config.routes.map((r, i) => new Route(i, r.pool === undefined ? null : pools.get(r.pool)!, r, config.compression, bound(i, r.pool ?? '', r)))
  const def = pools.get(DEFAULT_POOL)
  return new RoutingState(routes, def === undefined ? null : new Route(-1, def, undefined, config.compression, bound(-1, def.name)), pools, new TrustedProxies(config.trustedProxies), policy)
}
