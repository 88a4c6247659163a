/**
 * Chaos: Redis frozen (SIGSTOP: connections stay open, nothing answers) for longer than the lease,
 * every few seconds, under the mixed load (harness.ts). Claims time out (503), renewals and records
 * cannot land, leases end on Redis's clock while their owners wait: a key whose owner's lease ended
 * without a result is never free again (outcome unknown, or forwarded again to the deduping app), so
 * no order is executed twice.
 */
import t from 'tap'
import { sleep } from '../helpers/http.js'
import { chaosRun } from './harness.js'
import { problem } from './mixed-load.js'

const LEASE_SECONDS = 1
const FROZEN_MS = 2500

t.test('freeze Redis past the lease under GETs, session increments and keyed POSTs', async (t) => {
  const freezes: number[] = []
  const { r, summary } = await chaosRun(t, {
    name: 'redis-frozen',
    seconds: 15,
    // commands wait longer than the lease: a freeze ends leases while their requests are running
    config: { redis: { commandTimeoutMs: 2000 }, idempotency: { lockSeconds: LEASE_SECONDS } },
    // a GET reaches a worker whose Redis client may be stuck in the freeze: not an idempotency matter
    allowFailedGets: (res) => res.failedGets.every((g) => g.status === 503 || g.status === 500),
    async fault ({ redis, running, live }) {
      const goal = (): boolean => freezes.length >= 3
      while (running(goal())) {
        // keyed requests under way between freezes: paced by the load's progress, not the clock alone
        const keys = live.keys
        await sleep(2500)
        while (live.keys < keys + 20 && running(goal())) await sleep(50)
        if (!running(goal())) break
        const at = Date.now()
        redis.pause()
        await sleep(FROZEN_MS)
        redis.resume()
        freezes.push(Date.now() - at)
      }
    },
    faultSummary: () => ({ freezes: freezes.length, frozenMs: FROZEN_MS, leaseMs: LEASE_SECONDS * 1000 }),
  })
  t.ok(freezes.length >= 3, `Redis frozen ${freezes.length} times for ${FROZEN_MS} ms (lease ${LEASE_SECONDS * 1000} ms)`)
  t.ok(r.problems.some((p) => p.type === problem('state-unavailable')), 'the freezes were felt (503 state-unavailable)')
  t.equal(summary['duplicates'], 0, 'no order executed twice')
})
