/**
 * @module proxy/retry-policy
 * When a failed try may go to another upstream. The rule of nginx ≥ 1.9.13 and Caddy: a try whose
 * connection was never made is safe to repeat whatever the method; once request bytes may have been
 * sent, only idempotent methods with a replayable body are; never once the response started.
 * A budget (Envoy's retry_budget) caps concurrent retries to a share of the requests in flight, and
 * each retry waits a fully jittered exponential backoff (Envoy: base 25 ms, cap 250 ms) so that
 * failing clients do not retry in lockstep.
 */

/** What happened to one try, reported to the outlier detector and the retry policy. */
export type TryOutcome = 'ok' | 'connect-failed' | 'timeout' | 'reset' | 'http-5xx' | 'local'

/**
 * the outcomes a retry may follow (also the `reason` label of claylb_retries_total);
 * `reset-before-request`: the upstream reset the connection before any byte of an answer, so it never
 * read the request: made again at once, whatever the method, outside the budget (engine/exchange.ts)
 */
export const RETRY_REASONS = ['connect-failed', 'timeout', 'reset', 'http-5xx', 'reset-before-request'] as const
export type RetryReason = typeof RETRY_REASONS[number]

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
}

export function newRetryTally (): RetryTally {
  return { retried: { 'connect-failed': 0, timeout: 0, reset: 0, 'http-5xx': 0, 'reset-before-request': 0 }, overflow: 0 }
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
   * @param replayable the body (if any) was not consumed, and either no byte reached the upstream
   *   or the method is idempotent
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
