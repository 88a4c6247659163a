/**
 * @module routing/route-pool
 * One pool as requests see it: the hosts to pick from (its cluster), how to pick, when to retry and
 * its deadlines. Immutable once built; a reload that changes a pool's balancer, retry or timeouts
 * builds a new one, so a request keeps the settings it started with, and its deadlines stay in the
 * lists it was put in. (The cluster is the pool's lasting part: hosts and their health outlive a reload.)
 */
import type { Cluster } from '../upstream/cluster.js'
import type { Balancer } from '../balancer/balancer.js'
import { createBalancer, type BalancerSettings } from '../balancer/policy.js'
import { Deadlines } from '../http/deadlines.js'
import { newRetryTally, RetryPolicy, type RetrySettings, type RetryTally } from '../upstream/retry-policy.js'
import { hasLimits, PoolLimits, type PoolLimitSettings } from './pool-limits.js'

export interface RoutePoolTimeouts {
  connectMs: number
  headersMs: number
  requestMs: number
}

export interface RoutePoolOptions {
  name: string
  cluster: Cluster
  balancer: BalancerSettings
  retry: RetrySettings
  timeouts: RoutePoolTimeouts
  /** circuit breakers (config `limits`); unset or empty: none */
  limits?: PoolLimitSettings | undefined
  /** the retry counters every pool adds to (the metrics read one set) */
  tally?: RetryTally
}

export class RoutePool {
  readonly name: string
  readonly cluster: Cluster
  readonly balancer: Balancer
  readonly retry: RetryPolicy
  /** null when the pool has no `limits`: the engine's only cost then is reading this field */
  readonly limits: PoolLimits | null
  /** whole-request deadlines (timeouts.requestMs) */
  readonly requests: Deadlines
  /** a try's connect (timeouts.connectMs) */
  readonly connecting: Deadlines
  /** a try's wait for its answer's head (retry.perTryTimeoutMs, else timeouts.headersMs) */
  readonly waiting: Deadlines
  /** what it was built from, to tell whether a reload changed it */
  readonly key: string

  constructor (o: RoutePoolOptions) {
    this.name = o.name
    this.cluster = o.cluster
    this.balancer = createBalancer(o.balancer, o.cluster)
    const tally = o.tally ?? newRetryTally()
    this.retry = new RetryPolicy(o.retry, tally)
    this.limits = hasLimits(o.limits) ? new PoolLimits(o.limits, o.name, tally.overloaded) : null
    this.requests = new Deadlines(o.timeouts.requestMs)
    this.connecting = new Deadlines(o.timeouts.connectMs)
    const perTry = o.retry.perTryTimeoutMs ?? 0
    this.waiting = new Deadlines(perTry > 0 ? perTry : o.timeouts.headersMs)
    this.key = poolKey(o)
  }

  close (): void {
    this.requests.close()
    this.connecting.close()
    this.waiting.close()
  }
}

export function poolKey (o: RoutePoolOptions): string {
  const { connectMs, headersMs, requestMs } = o.timeouts
  const l = o.limits
  return JSON.stringify([o.name, o.balancer.policy, o.balancer.on, l?.maxInflight, l?.maxPending, l?.maxConnectionsPerHost, o.retry, connectMs, headersMs, requestMs])
}
