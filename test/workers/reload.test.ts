import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { stringify } from 'yaml'
import { startClaylb, writeConfig } from '../helpers/claylb.js'
import { req } from '../helpers/http.js'
import { waitFor } from '../helpers/wait.js'
import { status, steadyLoad } from './load.js'

const FIXTURES = join(import.meta.dirname, 'fixtures')
const base = { workers: { count: 3 }, log: { access: false } }

t.test('SIGHUP under a steady load: every pid changes, generation + 1, 0 failed', async (t) => {
  const file = writeConfig(base)
  const lb = await startClaylb({ args: ['--config', file] })
  t.teardown(() => lb.stop())
  const before = await status(lb.admin)
  t.equal(before.generation, 1)
  let done = false
  let answered = 0
  let afterRollout = 0
  let doneAt = Infinity
  const load = steadyLoad(lb.url, { total: 50_000, concurrency: 2, gapMs: 2, stop: () => done, onAnswer: (a, n) => { answered = n; if (a.sentAt > doneAt) afterRollout++ } })
  // the reload lands on a load already flowing, and the load goes on until the new generation served
  await waitFor(() => answered >= 20, '20 answers before the SIGHUP', { seen: () => answered })
  lb.proc.kill('SIGHUP')
  await lb.waitForLog((l) => l['msg'] === 'rollout of generation 2 complete', 40_000)
  doneAt = Date.now()
  await waitFor(() => afterRollout >= 20, '20 answers to requests sent after the rollout', { seen: () => afterRollout })
  done = true
  const r = await load
  t.equal(r.failed.length, 0, `0 failed of ${r.answers.length}: ${JSON.stringify(r.failed.slice(0, 3))}`)
  const after = await status(lb.admin)
  t.equal(after.generation, 2, 'generation went up by one')
  t.equal(after.workers.length, 3)
  t.ok(after.workers.every((w) => w.generation === 2 && w.state === 'ready'), 'all workers are generation 2')
  const oldPids = new Set(before.workers.map((w) => w.pid))
  t.notOk(after.workers.some((w) => oldPids.has(w.pid)), 'every pid changed')
  const oldIds = new Set(before.workers.map((w) => w.id))
  t.notOk(r.answers.some((a) => a.sentAt > doneAt && oldIds.has(a.worker)), 'no old worker answered after the rollout')
  t.ok(r.answers.some((a) => a.sentAt > doneAt), 'the new generation served')
})

t.test('a generation that never becomes ready is rolled back: old pids keep serving, 0 failed, the log says why', async (t) => {
  const file = writeConfig(base)
  const lb = await startClaylb({ args: ['--config', file] })
  t.teardown(() => lb.stop())
  const before = await status(lb.admin)
  writeFileSync(file, stringify({ ...base, workers: { count: 3, app: join(FIXTURES, 'never-ready.mjs'), readyTimeoutMs: 1500 } }))
  let done = false
  let answered = 0
  const load = steadyLoad(lb.url, { total: 50_000, concurrency: 2, gapMs: 2, stop: () => done, onAnswer: (_a, n) => { answered = n } })
  await waitFor(() => answered >= 20, '20 answers before the SIGHUP', { seen: () => answered })
  lb.proc.kill('SIGHUP')
  const abandoned = await lb.waitForLog((l) => String(l['msg']).startsWith('rollout of generation 2 abandoned'), 30_000)
  const atAbandon = answered
  await waitFor(() => answered >= atAbandon + 20, '20 more answers after the rollback', { seen: () => answered })
  done = true
  const r = await load
  t.equal(r.failed.length, 0, `0 failed of ${r.answers.length}`, { stderr: lb.stderr, failed: r.failed.slice(0, 5), logs: lb.logs.filter((l) => l['msg'] !== 'request').map((l) => `${l['time']} ${l['msg']} ${l['worker'] ?? ''} ${l['reason'] ?? l['exit'] ?? ''}`) })
  t.equal(abandoned['level'], 50, 'logged as an error')
  t.match(String(abandoned['msg']), /did not report ready within 1500 ms \(workers\.readyTimeoutMs\); generation 1 keeps serving/, 'the log says why')
  const after = await status(lb.admin)
  t.equal(after.generation, 1, 'still generation 1')
  t.same(after.workers.map((w) => w.pid).sort(), before.workers.map((w) => w.pid).sort(), 'the old pids keep serving, no new one is left')
  t.same(new Set(r.answers.map((a) => a.worker)), new Set(before.workers.map((w) => w.id)), 'only the old workers answered')
  t.equal(lb.logs.filter((l) => l['msg'] === 'worker spawned' && l['generation'] === 2).length, 1, 'the rollout stopped at its first bad worker')

  // an image whose health check fails is refused too, through the admin API
  writeFileSync(file, stringify({ ...base, workers: { count: 3, app: join(FIXTURES, 'sick-health.mjs') } }))
  const sick = await req(`${lb.admin}/reload`, { method: 'POST' })
  t.equal(sick.status, 409)
  t.equal(sick.headers['content-type'], 'application/problem+json', 'every refusal is one problem+json shape')
  t.match(JSON.parse(sick.body), { type: 'urn:claylb:problem:reload-refused', status: 409, detail: /failed 2 health probes of GET \/healthz: status 503/, problems: [/failed 2 health probes/], keys: [], generation: 1 })

  // a bad config file is refused before anything is spawned
  writeFileSync(file, stringify({ ...base, workers: { count: -1 } }))
  const bad = await req(`${lb.admin}/reload`, { method: 'POST' })
  t.equal(bad.status, 409)
  t.equal(bad.headers['content-type'], 'application/problem+json', 'the same shape for a file that does not validate')
  t.match(JSON.parse(bad.body), { type: 'urn:claylb:problem:reload-refused', detail: /workers\.count: must be a non-negative integer/, problems: ['workers.count: must be a non-negative integer'], keys: [] })

  // and a good one goes through
  writeFileSync(file, stringify({ ...base, workers: { count: 2 } }))
  const good = await req(`${lb.admin}/reload`, { method: 'POST' })
  t.equal(good.status, 200)
  t.same(JSON.parse(good.body), { generation: 2 })
  const last = await status(lb.admin)
  t.equal(last.workers.length, 2, 'the new generation has the new count')
  t.ok(last.workers.every((w) => w.generation === 2))
})
