import t from 'tap'
import { startClaylb } from '../helpers/claylb.js'
import { status, steadyLoad } from './load.js'

const base = { workers: { count: 3 }, log: { access: false } }

t.test('SIGHUP then SIGINT sent to the whole process group (a terminal): workers are reloaded and drained, never killed by them', async (t) => {
  const lb = await startClaylb({ config: base, detached: true })
  t.teardown(() => lb.stop('SIGKILL'))
  const before = await status(lb.admin)
  process.kill(-lb.pid, 'SIGHUP')
  await lb.waitForLog((l) => l['msg'] === 'rollout of generation 2 complete', 40_000)
  const r = await steadyLoad(lb.url, { total: 30 })
  t.equal(r.failed.length, 0)
  t.notOk(lb.logs.some((l) => l['msg'] === 'worker exited'), 'no worker died of the signal')
  t.same(lb.logs.filter((l) => l['msg'] === 'worker stopped').map((l) => l['worker']).sort(), before.workers.map((w) => w.id).sort(), 'the old generation was drained and stopped')
  process.kill(-lb.pid, 'SIGINT')
  t.equal(await lb.exited, 0, 'claylb drained and exited 0')
  const stopped = lb.logs.filter((l) => l['msg'] === 'worker stopped')
  t.equal(stopped.length, 6, 'every worker of both generations was stopped by claylb')
  t.ok(stopped.every((l) => l['exit'] === 'exit code 0'), 'each exited by itself after draining')
})
