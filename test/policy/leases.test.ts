/**
 * Leases against a model, by property: several processes (LeaseStores) on one bucket store, fed any
 * interleaving of requests on a few keys, never admit more than the store granted, every request is
 * decided (none left waiting), a refusal comes only when the store's bucket was empty, and the sum of
 * what was admitted and what the processes still hold is exactly what the store handed out.
 */
import t from 'tap'
import fc from 'fast-check'
import { LeaseStore, PENDING, type LimitWaiter } from '../../src/data/policy/leases.js'
import { TokenBuckets } from '../../src/data/policy/token-bucket.js'
import { Tally } from '../../src/data/upstream/host-counters.js'

t.test('any interleaving over several processes: admitted never exceeds what the store granted; every request decided', async (t) => {
  await fc.assert(fc.asyncProperty(
    fc.integer({ min: 0, max: 30 }),
    fc.integer({ min: 1, max: 4 }),
    fc.array(fc.record({ proc: fc.nat(3), key: fc.constantFrom('a', 'b', 'c'), yieldFirst: fc.boolean() }), { minLength: 1, maxLength: 120 }),
    async (burst, procs, requests) => {
      // refills are negligible (1/h): what the store hands out is burst + 1 per key, once
      const shape = { name: 'p', capacity: burst + 1, perMs: 1 / 3_600_000 }
      const store = new TokenBuckets(shape.capacity, shape.perMs)
      const handedOut = new Map<string, number>()
      const emptyAt = new Map<string, boolean>()
      const stores = Array.from({ length: procs }, () => new LeaseStore(shape, async (_l, key, _c, _p, want) => {
        await Promise.resolve()
        const got = store.take(key, want, Date.now())
        handedOut.set(key, (handedOut.get(key) ?? 0) + got)
        if (got < want) emptyAt.set(key, true)
        return [got, store.waitMs] as const
      }, 'deny', new Tally()))
      const admitted = new Map<string, number>()
      let decided = 0
      const refusedBeforeEmpty: string[] = []
      const waits: Promise<void>[] = []
      for (const r of requests) {
        if (r.yieldFirst) await new Promise((resolve) => setImmediate(resolve))
        const count = (waitMs: number): void => {
          decided++
          if (waitMs === 0) admitted.set(r.key, (admitted.get(r.key) ?? 0) + 1)
          else if (emptyAt.get(r.key) !== true) refusedBeforeEmpty.push(r.key)
        }
        let resolve!: () => void
        const waiter: LimitWaiter = { limitDecided (w) { count(w); resolve() } }
        const p = new Promise<void>((res) => { resolve = res })
        const got = stores[r.proc % procs]!.take(r.key, waiter)
        if (got === PENDING) waits.push(p)
        else count(got)
      }
      await Promise.all(waits)
      for (const s of stores) s.close()
      if (decided !== requests.length) throw new Error(`${requests.length - decided} requests never decided`)
      if (refusedBeforeEmpty.length > 0) throw new Error(`refused while the bucket had tokens: ${refusedBeforeEmpty.join(',')}`)
      for (const [key, n] of admitted) {
        if (n > (handedOut.get(key) ?? 0)) throw new Error(`${key}: admitted ${n} > handed out ${handedOut.get(key)}`)
        if (n > burst + 1) throw new Error(`${key}: admitted ${n} > capacity ${burst + 1}`)
      }
    },
  ), { numRuns: 300 })
})
