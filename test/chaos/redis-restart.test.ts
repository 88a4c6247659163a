/**
 * Chaos: Redis stops (SIGKILL or a clean SIGTERM, in turn) for about a second every few seconds and
 * comes back with its data (an append-only file fsynced per write), under the mixed load (harness.ts).
 */
import t from 'tap'
import { sleep } from '../helpers/http.js'
import { chaosRun } from './harness.js'
import { problem } from './mixed-load.js'

const OUTAGES = 3

t.test('stop and restart Redis under GETs, session increments and keyed POSTs', async (t) => {
  const outages: Array<{ signal: string, ms: number }> = []
  const { r, orders } = await chaosRun(t, {
    name: 'redis-restart',
    seconds: 15,
    persistRedis: true,
    // an outage is shorter than the lease, so a claim outlives it
    config: { redis: { commandTimeoutMs: 500 }, idempotency: { lockSeconds: 5 } },
    async fault ({ redis, running, live }) {
      let n = 0
      const goal = (): boolean => outages.length >= OUTAGES
      while (running(goal())) {
        // 2.5 s and some traffic between outages: on a busy machine, the traffic paces it
        const served = live.gets
        await sleep(2500)
        while (live.gets < served + 50 && running(goal())) await sleep(50)
        if (!running(goal())) break
        const signal = n++ % 2 === 0 ? 'SIGKILL' : 'SIGTERM'
        const down = Date.now()
        await redis.stop(signal)
        // down for a second, and until a client was refused for it (or 5 s)
        const refused = live.problems.length
        await sleep(1000)
        while (live.problems.length === refused && Date.now() - down < 5000) await sleep(50)
        await redis.start()
        outages.push({ signal, ms: Date.now() - down })
      }
    },
    faultSummary: () => ({ outages: outages.length }),
  })
  t.ok(outages.length >= OUTAGES, `Redis restarted ${outages.length} times: ${JSON.stringify(outages)}`)

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
