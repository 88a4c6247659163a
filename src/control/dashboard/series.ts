/**
 * @module control/dashboard/series
 * What the dashboard charts, made from the counters' plain numbers: the difference between two
 * readings of a host's or a route's counters (requests, 5xx, latency buckets), and from it the
 * request rate, the 5xx ratio and the latency quantiles of that interval (Prometheus's
 * histogram_quantile: linear within the bucket the rank falls in).
 */
import { DURATION_BUCKETS_SECONDS } from '../../data/upstream/host-counters.js'

/** the counters one reading keeps of a series */
export interface Reading { codes: ArrayLike<number>, buckets: ArrayLike<number>, count: number, tries: ArrayLike<number> }

/** one chart point of a pool or a route: req/s, 5xx share (0–1), p50 and p99 in ms (null: no request in the interval) */
export type Point = [rps: number, errorRatio: number, p50: number | null, p99: number | null]

/** `now - before`, slot by slot, into `into` (made when absent) */
export function delta (now: Reading, before: Reading | undefined, into?: { codes: number[], buckets: number[], count: number }): { codes: number[], buckets: number[], count: number } {
  const out = into ?? { codes: new Array<number>(now.codes.length).fill(0), buckets: new Array<number>(now.buckets.length).fill(0), count: 0 }
  for (let i = 0; i < now.codes.length; i++) out.codes[i]! += now.codes[i]! - (before?.codes[i] ?? 0)
  for (let i = 0; i < now.buckets.length; i++) out.buckets[i]! += now.buckets[i]! - (before?.buckets[i] ?? 0)
  out.count += now.count - (before?.count ?? 0)
  return out
}

/**
 * The q-quantile (0–1) in seconds of non-cumulative bucket counts over `bounds` (the last bucket is
 * above every bound: its quantile is the highest bound, as Prometheus answers). null: no observation.
 */
export function quantile (q: number, buckets: ArrayLike<number>, bounds: readonly number[] = DURATION_BUCKETS_SECONDS): number | null {
  let total = 0
  for (let i = 0; i < buckets.length; i++) total += buckets[i]!
  if (total <= 0) return null
  const rank = q * total
  let acc = 0
  for (let i = 0; i < buckets.length; i++) {
    const n = buckets[i]!
    if (acc + n >= rank && n > 0) {
      if (i >= bounds.length) return bounds[bounds.length - 1]!
      const lo = i === 0 ? 0 : bounds[i - 1]!
      return lo + (bounds[i]! - lo) * ((rank - acc) / n)
    }
    acc += n
  }
  return bounds[bounds.length - 1]!
}

/** one interval's point from the summed differences over `seconds` */
export function pointOf (d: { codes: number[], buckets: number[], count: number }, seconds: number): Point {
  const ms = (s: number | null): number | null => s === null ? null : Math.round(s * 10_000) / 10
  const rps = seconds > 0 ? d.count / seconds : 0
  return [Math.round(rps * 100) / 100, d.count > 0 ? Math.round((d.codes[5]! / d.count) * 10_000) / 10_000 : 0, ms(quantile(0.5, d.buckets)), ms(quantile(0.99, d.buckets))]
}

/** failed tries of a reading: connect-failed, timeout, reset, http-5xx (never `local`: the client left) */
export function errorsOf (r: Reading): number {
  let n = 0
  for (let i = 1; i <= 4 && i < r.tries.length; i++) n += r.tries[i]!
  return n
}
