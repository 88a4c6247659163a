/**
 * Chaos: Redis stops (SIGKILL or a clean SIGTERM, in turn) for about a second every few seconds and
 * comes back with its data (an append-only file fsynced per write), under the mixed load (harness.ts).
 */
import t from 'tap'
import { sleep } from '../helpers/http.js'
import { chaosRun } from './harness.js'
import { problem } from './mixed-load.js'

t.test('stop and restart Redis under GETs, session increments and keyed POSTs', async (t) => {
  const outages: Array<{ signal: string, ms: number }> = []
  const { r, orders } = await chaosRun(t, {
    name: 'redis-restart',
    seconds: 15,
    persistRedis: true,
    // an outage is shorter than the lease, so a claim outlives it
    config: { redis: { commandTimeoutMs: 500 }, idempotency: { lockSeconds: 5 } },
    async fault ({ redis, running }) {
      let n = 0
      while (running()) {
        await sleep(2500)
        if (!running()) break
        const signal = n++ % 2 === 0 ? 'SIGKILL' : 'SIGTERM'
        const down = Date.now()
        await redis.stop(signal)
        await sleep(1000)
        await redis.start()
        outages.push({ signal, ms: Date.now() - down })
      }
    },
    faultSummary: () => ({ outages: outages.length }),
  })
  t.ok(outages.length >= 3, `Redis restarted ${outages.length} times: ${JSON.stringify(outages)}`)

  // what a client may see while Redis is away, and nothing else
  const allowed = new Set([
    problem('state-unavailable'), // refused before anything ran: retry
    problem('state-outcome-unknown'), // the app's write was sent and its reply lost: stored, final
    problem('idempotency-in-flight'), // a claim whose result is still being recorded
  ])
  const seen = new Set(r.problems.map((p) => p.type))
  t.ok([...seen].every((type) => allowed.has(type)), `only outage answers: ${[...seen].join(', ')}`)
  t.ok(r.problems.some((p) => p.type === problem('state-unavailable')), 'the outages were seen by the clients (503 state-unavailable)')
  t.equal(r.uncertainKeys, 0, 'no key saw a 502, 504 or outcome-unknown')
  t.ok(orders <= r.keys, `no order executed twice, even across an outage: ${orders} <= ${r.keys} keys`)
})
