/**
 * Chaos: kill -9 a random ready worker every second under the mixed load (see harness.ts).
 */
import t from 'tap'
import { sleep } from '../helpers/http.js'
import { status } from '../workers/load.js'
import { chaosRun } from './harness.js'

t.test('kill -9 a random worker every second under GETs, session increments and keyed POSTs', async (t) => {
  const killed: number[] = []
  const { summary } = await chaosRun(t, {
    name: 'kill-workers',
    seconds: 15,
    async fault ({ lb, running }) {
      while (running()) {
        await sleep(1000)
        if (!running()) break
        // while another one is ready to serve: with none left a 503 would be the right answer
        const ready = (await status(lb.admin)).workers.filter((w) => w.state === 'ready')
        if (ready.length < 2) continue
        const victim = ready[Math.floor(Math.random() * ready.length)]!
        try { process.kill(victim.pid, 'SIGKILL'); killed.push(victim.pid) } catch { /* already gone */ }
      }
    },
    faultSummary: () => ({ workersKilled: killed.length }),
  })
  t.ok(killed.length >= Math.min(3, Number(summary['seconds']) - 1), `workers killed: ${killed.length}`)
})
