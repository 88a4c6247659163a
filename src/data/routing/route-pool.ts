/**
 * @module routing/route-pool
 * One pool as requests see it: the hosts to pick from (its cluster), how to pick, when to retry and
 * its deadlines. Immutable once built; a reload that changes a pool's balancer, retry or timeouts
 * builds a new one, so a request keeps the settings it started with, and its deadlines stay in the
 * lists it was put in. (The cluster is the pool's lasting part: hosts and their health outlive a reload.)
 */
import type { Cluster } from '../upstream/cluster.js'
import type { Balancer } from '../balancer/balancer.js'
import { createBalancer, type BalancerPolicy } from '../balancer/policy.js'
import { Deadlines } from '../http/deadlines.js'
import { RetryPolicy, type RetrySettings, type RetryTally } from '../upstream/retry-policy.js'

export interface RoutePoolTimeouts {
  connectMs: number
  headersMs: number
  requestMs: number
}

export interface RoutePoolOptions {
  name: string
  cluster: Cluster
  policy: BalancerPolicy
  retry: RetrySettings
  timeouts: RoutePoolTimeouts
  /** the retry counters every pool adds to (the metrics read one set) */
  tally?: RetryTally
}

export class RoutePool {
  readonly name: string
  readonly cluster: Cluster
  readonly balancer: Balancer
  readonly retry: RetryPolicy
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
    this.balancer = createBalancer(o.policy, o.cluster)
    this.retry = new RetryPolicy(o.retry, o.tally)
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
  return JSON.stringify([o.name, o.policy, o.retry, connectMs, headersMs, requestMs])
}
