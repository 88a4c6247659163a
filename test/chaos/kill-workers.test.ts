/**
 * Chaos: kill -9 a random ready worker every second under the mixed load (see harness.ts).
 */
import t from 'tap'
import { sleep } from '../helpers/http.js'
import { status } from '../workers/load.js'
import { chaosRun } from './harness.js'

const KILLS = 3

t.test('kill -9 a random worker every second under GETs, session increments and keyed POSTs', async (t) => {
  const killed: number[] = []
  await chaosRun(t, {
    name: 'kill-workers',
    seconds: 15,
    async fault ({ lb, running, live }) {
      while (running(killed.length >= KILLS)) {
        // a second and some traffic since the last kill: on a busy machine, the traffic paces it
        const served = live.gets
        await sleep(1000)
        while (live.gets < served + 20 && running(killed.length >= KILLS)) await sleep(50)
        if (!running(killed.length >= KILLS)) break
        // while another one is ready to serve: with none left a 503 would be the right answer
        const ready = (await status(lb.admin)).workers.filter((w) => w.state === 'ready')
        if (ready.length < 2) continue
        const victim = ready[Math.floor(Math.random() * ready.length)]!
        try { process.kill(victim.pid, 'SIGKILL'); killed.push(victim.pid) } catch { /* already gone */ }
      }
    },
    faultSummary: () => ({ workersKilled: killed.length }),
  })
  t.ok(killed.length >= KILLS, `workers killed: ${killed.length}`)
})
