/**
 * @module idempotency/counters
 * The idempotency layer's counters as plain numbers (the request path only adds), for a metrics
 * registry to read at scrape time: executions, replays, 400/409/422 answers, lost leases, unknown
 * outcomes and fail-closed 503s.
 */
import type { IdempotencyObserver } from './core.js'

export class IdempotencyCounters implements IdempotencyObserver {
  executions = 0
  replays = 0
  /** by status: 400, 409, 422 */
  readonly rejections: Record<400 | 409 | 422, number> = { 400: 0, 409: 0, 422: 0 }
  leaseExpiries = 0
  unknownOutcomes = 0
  failClosed503 = 0

  execution (): void { this.executions++ }
  replay (): void { this.replays++ }
  rejected (status: number): void {
    if (status === 400 || status === 409 || status === 422) this.rejections[status]++
  }
  leaseLost (): void { this.leaseExpiries++ }
  unknownOutcome (): void { this.unknownOutcomes++ }
  failClosed (): void { this.failClosed503++ }
}
