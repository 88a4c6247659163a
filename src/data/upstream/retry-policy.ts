/**
 * @module proxy/retry-policy
 * When a failed try may go to another upstream: the one rule that keeps claylb from running a request
 * twice without telling the client (`resendable`), a budget and a backoff.
 *
 * The rule (nginx's `proxy_next_upstream` without `non_idempotent`, Go's http.Transport replaying
 * only what it never wrote): a request that provably never reached an application may be sent again
 * whatever its method; once request bytes left, a failure (reset, EOF, timeout) leaves the outcome
 * unknown, and only an idempotent method (RFC 9110 §9.2.2) may be sent again. Never once the answer
 * started.
 * A budget (Envoy's retry_budget) caps concurrent retries to a share of the requests in flight, and
 * each retry waits a fully jittered exponential backoff (Envoy: base 25 ms, cap 250 ms) so that
 * failing clients do not retry in lockstep.
 */
import type { OverloadTally } from '../routing/pool-limits.js'

/** What happened to one try, reported to the outlier detector and the retry policy. */
export type TryOutcome = 'ok' | 'connect-failed' | 'timeout' | 'reset' | 'http-5xx' | 'local'

/**
 * the outcomes a retry may follow (also the `reason` label of claylb_retries_total);
 * `not-sent`: the try's connection was seen closed before any request byte was written, or the
 * kernel refused its first write (a pooled connection the upstream had closed, a dead worker's
 * socket): nothing reached an application, so it is made again at once whatever the method, once per
 * request outside the budget (engine/exchange.ts). It replaces `reset-before-request`, which also
 * counted resets after the request was written (those may have run: they are `reset` now).
 */
export const RETRY_REASONS = ['connect-failed', 'timeout', 'reset', 'http-5xx', 'not-sent'] as const
export type RetryReason = typeof RETRY_REASONS[number]

/**
 * What a failed try proves about its request: it is unsent when the connection was never made, was
 * seen closed before any request byte was written, or refused the try's first write (the kernel took
 * none of it), or (`resetUnread`, claylb's own workers only: engine/upstream-pool) reset with the
 * whole request still queued unread; else request bytes left and an application may have acted on them.
 */
export function unsentTry (connected: boolean, sent: boolean, refused: boolean, resetUnread: boolean): boolean {
  return !connected || !sent || refused || resetUnread
}

/**
 * THE rule: may a failed try (its answer not started) be sent again to an upstream?
 * A keyed request that may have run is never sent again here, even on an `upstreamDedupes` route:
 * the exchange ends it as an unknown outcome (the client is told: 502) and the client's retry is
 * forwarded under the same claylb-idempotency-id (idempotency/core's reclaim). Re-sending it at once
 * would hand a request that killed one upstream (a query of death) straight to the next.
 * @param unsent see unsentTry: nothing reached an application
 * @param idempotent the method is idempotent (RFC 9110 §9.2.2: GET, HEAD, OPTIONS, TRACE, PUT, DELETE)
 * @param replayable the body is still all here (not streamed past the replay limit)
 */
export function resendable (unsent: boolean, idempotent: boolean, replayable: boolean): boolean {
  return replayable && (unsent || idempotent)
}

export interface RetrySettings {
  attempts: number
  budgetPercent: number
  minRetryConcurrency: number
  backoffBaseMs?: number
  backoffMaxMs?: number
  perTryTimeoutMs?: number
  onStatus?: readonly number[]
}

/** counters the metrics read at scrape time; every pool's policy adds to the one set */
export interface RetryTally {
  /** retries started, by reason */
  readonly retried: Record<RetryReason, number>
  /** retries refused because the budget was spent (Envoy's upstream_rq_retry_overflow) */
  overflow: number
  /** the pools' circuit-breaker refusals (routing/pool-limits), threaded with these to the metrics */
  readonly overloaded: OverloadTally
}

export function newRetryTally (): RetryTally {
  return { retried: { 'connect-failed': 0, timeout: 0, reset: 0, 'http-5xx': 0, 'not-sent': 0 }, overflow: 0, overloaded: {} }
}

export class RetryPolicy {
  /** retries currently under way (a retry counts from its decision until its try ends) */
  active = 0
  readonly tally: RetryTally
  readonly perTryTimeoutMs: number
  /** upstream statuses answered by a retry instead of being passed on (idempotent requests only) */
  readonly onStatus: ReadonlySet<number>
  private readonly baseMs: number
  private readonly maxMs: number

  constructor (private readonly s: RetrySettings, tally: RetryTally = newRetryTally()) {
    this.tally = tally
    this.baseMs = s.backoffBaseMs ?? 25
    this.maxMs = s.backoffMaxMs ?? 250
    this.perTryTimeoutMs = s.perTryTimeoutMs ?? 0
    this.onStatus = new Set(s.onStatus ?? [])
  }

  get retried (): Record<RetryReason, number> { return this.tally.retried }
  get overflow (): number { return this.tally.overflow }

  /**
   * @param attempts tries made so far
   * @param replayable `resendable`: the try may be sent again at all
   * @param inflight requests in flight through the proxy now
   */
  allow (outcome: TryOutcome, attempts: number, replayable: boolean, inflight: number): boolean {
    if (attempts >= this.s.attempts || !replayable) return false
    if (outcome === 'ok' || outcome === 'local') return false
    // timeouts.headersMs is a whole-request limit; only a configured per-try timeout invites another try
    if (outcome === 'timeout' && this.perTryTimeoutMs === 0) return false
    const budget = Math.max(this.s.minRetryConcurrency, Math.floor((inflight * this.s.budgetPercent) / 100))
    if (this.active < budget) return true
    this.tally.overflow++
    return false
  }

  /**
   * A retry decided after `attempts` tries: counted (active, by reason) and its backoff in ms, or -1
   * when the backoff would end past `deadlineAt` (then it is not counted and the request must fail).
   */
  begin (reason: RetryReason, attempts: number, deadlineAt: number): number {
    const delay = this.backoffMs(attempts)
    if (Date.now() + delay >= deadlineAt) return -1
    this.active++
    this.tally.retried[reason]++
    return delay
  }

  /** Full jitter: uniform in [0, min(max, base × 2^(retry-1))]; `attempts` = tries made so far. */
  backoffMs (attempts: number): number {
    const ceiling = Math.min(this.maxMs, this.baseMs * 2 ** Math.min(attempts - 1, 16))
    return Math.random() * ceiling
  }
}
