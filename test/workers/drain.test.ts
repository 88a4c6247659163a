import t from 'tap'
import { startClaylb } from '../helpers/claylb.js'
import { req } from '../helpers/http.js'
import { assertNoRequestAfterDrain, status, steadyLoad, until } from './load.js'

t.test('a worker never receives a request after it was told to drain (its own count), under concurrent load', async (t) => {
  const lb = await startClaylb({ config: { workers: { count: 3 }, log: { access: false } } })
  t.teardown(() => lb.stop())
  const targets = (await status(lb.admin)).workers.map((w) => w.id)
  const stoppedCount = (): number => lb.logs.filter((l) => l['msg'] === 'worker stopped').length
  let stoppedAt = 0
  // until all three are stopped, and then some more
  const load = steadyLoad(lb.url, {
    total: 20_000,
    concurrency: 6,
    path: '/delay/15',
    stop: () => stoppedCount() >= 3 && (stoppedAt ||= Date.now()) < Date.now() - 300,
  })
  // recycle every worker through the admin API while requests are in flight on each
  for (const id of targets) {
    await until(async () => (await status(lb.admin)).workers.find((w) => w.id === id)?.requests ?? 0, (n) => n > 10, 15_000, `${id} busy`)
    const r = await req(`${lb.admin}/workers/${id}/recycle`, { method: 'POST' })
    t.equal(r.status, 202, `recycle ${id} accepted`)
  }
  const r = await load
  t.equal(r.failed.length, 0, `0 failed: ${JSON.stringify(r.failed.slice(0, 3))}`)
  assertNoRequestAfterDrain(t, lb, targets)
  for (const id of targets) {
    const stopped = lb.logs.find((l) => l['msg'] === 'worker stopped' && l['worker'] === id)!
    const drainedAt = Number(stopped['time'])
    t.ok(r.answers.some((a) => a.sentAt > drainedAt), `requests went on after ${id} stopped`)
  }
  t.equal((await req(`${lb.admin}/workers/nope/recycle`, { method: 'POST' })).status, 404)
})

t.test('maxAgeSeconds: workers are recycled by age, surge first, with 0 failed', async (t) => {
  const lb = await startClaylb({ config: { workers: { count: 2, maxAgeSeconds: 1, recycleJitterPercent: 50 }, log: { access: false } } })
  t.teardown(() => lb.stop())
  const first = (await status(lb.admin)).workers
  const r = await steadyLoad(lb.url, {
    total: 20_000,
    gapMs: 5,
    stop: () => first.every((w) => lb.logs.some((l) => l['msg'] === 'worker recycled' && l['worker'] === w.id)),
  })
  t.equal(r.failed.length, 0, `0 failed of ${r.answers.length}`)
  const recycles = lb.logs.filter((l) => l['msg'] === 'recycling worker' && first.some((w) => w.id === l['worker']))
  // a recycle whose replacement was not ready in time is abandoned and tried again (the old worker
  // serves meanwhile): on a loaded machine a first worker may log two attempts, both for its age
  // `first` may hold 3: with maxAgeSeconds 1 a surge replacement can already be up when /status is read
  t.ok(recycles.length >= first.length && recycles.every((l) => l['reason'] === 'maxAgeSeconds'), `every recycle of a first worker was for its age (${recycles.map((l) => String(l['reason'])).join(', ')})`)
  for (const w of first) {
    const done = lb.logs.filter((l) => l['msg'] === 'worker recycled' && l['worker'] === w.id)
    t.same(done.map((l) => l['reason']), ['maxAgeSeconds'], `${w.id} recycled once, for its age`)
  }
  const abandoned = lb.logs.filter((l) => l['msg'] === 'recycle abandoned: the replacement did not become ready; the old worker keeps serving').length
  t.equal(recycles.length, first.length + abandoned, 'an attempt beyond one per worker only after an abandoned one')
  assertNoRequestAfterDrain(t, lb, first.map((w) => w.id))
})
