/**
 * The dashboard's chart values from counter readings: a quantile read from the buckets lies in the
 * bucket where the true quantile of the observations is (what histogram_quantile can promise), and
 * an interval's point counts exactly the requests and 5xx between two readings.
 */
import t from 'tap'
import fc from 'fast-check'
import { delta, pointOf, quantile } from '../../src/control/dashboard/series.js'
import { bucketOf, DURATION_BUCKETS_SECONDS as B } from '../../src/data/upstream/host-counters.js'

const bucketsOf = (xs: readonly number[]): number[] => {
  const b = new Array<number>(B.length + 1).fill(0)
  for (const x of xs) b[bucketOf(B, x)]!++
  return b
}

t.test('a quantile from the buckets lies within the bucket of the true quantile', async (t) => {
  fc.assert(fc.property(fc.array(fc.double({ min: 0, max: 120, noNaN: true }), { minLength: 1, maxLength: 300 }), fc.constantFrom(0.5, 0.9, 0.99), (xs, q) => {
    const sorted = [...xs].sort((a, b) => a - b)
    const truth = sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)]!
    const est = quantile(q, bucketsOf(xs))!
    const i = bucketOf(B, truth)
    const lo = i === 0 ? 0 : B[i - 1]!
    const hi = i >= B.length ? B[B.length - 1]! : B[i]!
    return est >= lo - 1e-12 && est <= hi + 1e-12
  }), { seed: Number(process.env['PROPERTY_SEED'] ?? 28), numRuns: 500 })
  t.equal(quantile(0.5, bucketsOf([])), null, 'no observation: no quantile')
})

t.test('a point counts the requests and 5xx between two readings', async (t) => {
  fc.assert(fc.property(fc.array(fc.tuple(fc.integer({ min: 100, max: 599 }), fc.double({ min: 0, max: 2, noNaN: true })), { maxLength: 200 }), fc.nat(200), (reqs, cut) => {
    const read = (rs: typeof reqs) => {
      const codes = new Array<number>(6).fill(0)
      for (const [s] of rs) codes[Math.floor(s / 100)]!++
      return { codes, buckets: bucketsOf(rs.map(([, d]) => d)), count: rs.length, tries: [] }
    }
    const k = Math.min(cut, reqs.length)
    const d = delta(read(reqs), read(reqs.slice(0, k)))
    const later = reqs.slice(k)
    const [rps, err] = pointOf(d, 2)
    const fives = later.filter(([s]) => s >= 500).length
    return d.count === later.length && Math.abs(rps - later.length / 2) < 0.01 && Math.abs(err - (later.length === 0 ? 0 : fives / later.length)) < 0.0001
  }), { seed: Number(process.env['PROPERTY_SEED'] ?? 28), numRuns: 300 })
  t.pass()
})
