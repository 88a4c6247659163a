/**
 * @module proxy/retry-policy
 * When a failed try may go to another upstream. The rule of nginx ≥ 1.9.13 and Caddy: a try whose
 * connection was never made is safe to repeat whatever the method; once request bytes may have been
 * sent, only idempotent methods with a replayable body are; never once the response started.
 * A budget (Envoy's retry_budget) caps concurrent retries to a share of the requests in flight.
 */

/** What happened to one try, reported to the outlier detector and the retry policy. */
export type TryOutcome = 'ok' | 'connect-failed' | 'timeout' | 'reset' | 'http-5xx' | 'local'

export interface RetrySettings {
  attempts: number
  budgetPercent: number
  minRetryConcurrency: number
}

export class RetryPolicy {
  /** retries currently under way (a retry counts from its decision until its try ends) */
  active = 0
  constructor (private readonly s: RetrySettings) {}

  /**
   * @param attempts tries made so far
   * @param replayable the body (if any) was not consumed, and either no byte reached the upstream
   *   or the method is idempotent
   * @param inflight requests in flight through the proxy now
   */
  allow (outcome: TryOutcome, attempts: number, replayable: boolean, inflight: number): boolean {
    if (attempts >= this.s.attempts || !replayable) return false
    if (outcome !== 'connect-failed' && outcome !== 'reset') return false
    const budget = Math.max(this.s.minRetryConcurrency, Math.floor((inflight * this.s.budgetPercent) / 100))
    return this.active < budget
  }
}
