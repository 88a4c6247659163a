/**
 * @module routing/pool-limits
 * A pool's circuit breakers (Envoy's max_requests / max_pending_requests / max_connections): past a
 * limit a request is answered 503 `pool-overloaded` at once rather than joining a queue that grows
 * without bound. Counted per proxy process: each process owns its upstream connections and its
 * requests, so N processes allow N × each limit (README "Concurrency limits").
 *
 * - maxInflight: requests of the pool active at once (from their turn to their answer's end);
 * - maxConnectionsPerHost: upstream connections to one host; a request finding them all busy waits
 *   for one (in arrival order), which is what
 * - maxPending bounds: requests waiting for a connection, across the pool's hosts.
 *
 * A pool without `limits` has no PoolLimits (RoutePool.limits is null): the engine tests one field.
 */

/** config `limits` of a pool (each key unset: no limit) */
export interface PoolLimitSettings {
  readonly maxInflight?: number | undefined
  readonly maxPending?: number | undefined
  readonly maxConnectionsPerHost?: number | undefined
}

/** Envoy's default max_pending_requests: a connection cap without maxPending still has a bounded queue */
export const DEFAULT_MAX_PENDING = 1024

export type OverloadLimit = 'max_inflight' | 'max_pending'

/** refusals by pool and limit, summed by the metrics over every RoutePool a pool had (reloads) */
export type OverloadTally = Record<string, Record<OverloadLimit, number>>

export class PoolLimits {
  readonly maxInflight: number
  readonly maxPending: number
  /** 0: no cap */
  readonly maxConnectionsPerHost: number
  inflight = 0
  pending = 0
  private readonly refused: Record<OverloadLimit, number>

  constructor (s: PoolLimitSettings, pool: string, tally: OverloadTally) {
    this.maxInflight = s.maxInflight ?? Infinity
    this.maxConnectionsPerHost = s.maxConnectionsPerHost ?? 0
    this.maxPending = s.maxPending ?? DEFAULT_MAX_PENDING
    this.refused = tally[pool] ??= { max_inflight: 0, max_pending: 0 }
  }

  /** a request's turn came: counted in, or refused (false) when the pool is full */
  admit (): boolean {
    if (this.inflight >= this.maxInflight) {
      this.refused.max_inflight++
      return false
    }
    this.inflight++
    return true
  }

  done (): void {
    this.inflight--
  }

  /** a request may wait for a connection, or is refused (false) when the queue is full */
  enqueue (): boolean {
    if (this.pending >= this.maxPending) {
      this.refused.max_pending++
      return false
    }
    this.pending++
    return true
  }

  dequeue (): void {
    this.pending--
  }
}

/** limits configured at all (else the pool gets none and pays nothing) */
export function hasLimits (s: PoolLimitSettings | undefined): s is PoolLimitSettings {
  return s !== undefined && (s.maxInflight !== undefined || s.maxPending !== undefined || s.maxConnectionsPerHost !== undefined)
}
