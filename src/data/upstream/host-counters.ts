/**
 * @module upstream/host-counters
 * One upstream's request counters: the request path adds to plain numbers here (bound to the host when
 * it joins the cluster), and the metrics module reads them at scrape time. They belong to the host, so
 * the upstream layer declares them and metrics/ only exports them.
 */
import type { TryOutcome } from './retry-policy.js'

/** request duration buckets, seconds: 1 ms to 60 s (the default request deadline) */
export const DURATION_BUCKETS_SECONDS: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]
export const OUTCOMES: readonly TryOutcome[] = ['ok', 'connect-failed', 'timeout', 'reset', 'http-5xx', 'local']
export const OUTCOME_INDEX: Readonly<Record<TryOutcome, number>> = { ok: 0, 'connect-failed': 1, timeout: 2, reset: 3, 'http-5xx': 4, local: 5 }

/** the index of the (non-cumulative) bucket `v` falls in: the first bound it does not exceed, else bounds.length */
export function bucketOf (bounds: readonly number[], v: number): number {
  let i = 0
  while (i < bounds.length && v > bounds[i]!) i++
  return i
}

/** A counter the request path (or another module) increments for free; exported at scrape time. */
export class Tally {
  value = 0
  inc (n = 1): void { this.value += n }
}

/** One upstream's request counters, added to on the request path, read at scrape time. */
export class HostCounters {
  /** index = status / 100 (1..5) */
  readonly codes = new Float64Array(6)
  /** per DURATION_BUCKETS_SECONDS bound (not cumulative), last = above every bound */
  readonly buckets = new Float64Array(DURATION_BUCKETS_SECONDS.length + 1)
  durationSum = 0
  count = 0
  /** index = OUTCOME_INDEX */
  readonly tries = new Float64Array(OUTCOMES.length)
  /** times the outlier detector ejected this host */
  readonly ejections = new Tally()

  constructor (readonly upstream: string) {}

  request (status: number, seconds: number): void {
    const c = (status / 100) | 0
    this.codes[c >= 1 && c <= 5 ? c : 5]!++
    this.buckets[bucketOf(DURATION_BUCKETS_SECONDS, seconds)]!++
    this.durationSum += seconds
    this.count++
  }
}
