import t, { type Test } from 'tap'
import { startClaylb, type Claylb } from '../helpers/claylb.js'
import { req } from '../helpers/http.js'
import { status, steadyLoad, until, type Status } from './load.js'

/** polls /status while `during` runs; returns every snapshot */
async function watch (admin: string, during: Promise<unknown>): Promise<Status[]> {
  const seen: Status[] = []
  let done = false
  void during.finally(() => { done = true })
  while (!done) {
    seen.push(await status(admin))
    await new Promise((resolve) => setTimeout(resolve, 40))
  }
  await during
  return seen
}

/** every stopped worker got no request after it was told to drain, by its own count */
function assertNoRequestAfterDrain (t: Test, lb: Claylb, ids: string[]): void {
  for (const id of ids) {
    const stopped = lb.logs.find((l) => l['msg'] === 'worker stopped' && l['worker'] === id)
    t.ok(stopped, `${id} stopped`)
    if (!stopped) continue
    t.equal(stopped['exit'], 'exit code 0', `${id} exited by itself after its drain`)
    t.equal(stopped['requests'], stopped['dispatchedAtDrain'], `${id}: its own count ${stopped['requests']} = what the proxy had sent it when it was told to drain`)
    t.equal(stopped['dispatched'], stopped['dispatchedAtDrain'], `${id}: the proxy sent it nothing after`)
  }
}

t.test('maxRequests 50, 3 workers, 600 requests: every slot recycled twice, one at a time, 0 failed', async (t) => {
  const lb = await startClaylb({ config: { workers: { count: 3, maxRequests: 50 }, log: { access: false } } })
  t.teardown(() => lb.stop())
  const first = (await status(lb.admin)).workers
  const load = steadyLoad(lb.url, { total: 600, gapMs: 8 })
  const snapshots = await watch(lb.admin, load)
  const r = await load
  t.equal(r.failed.length, 0, `0 failed: ${JSON.stringify(r.failed.slice(0, 3))}`)
  t.equal(r.answers.length, 600)

  const recycled = (slot: number): number => lb.logs.filter((l) => l['msg'] === 'worker recycled' && l['slot'] === slot).length
  // a worker asks for its replacement at its 50th-55th request; let the queued ones finish
  await until(async () => [1, 2, 3].map(recycled), (c) => c.every((n) => n >= 2), 30_000, 'two recycles per slot')
  const firstPids = new Set(first.map((w) => w.pid))
  const pidsPerSlot = [1, 2, 3].map((slot) => new Set(lb.logs.filter((l) => l['msg'] === 'worker spawned' && l['slot'] === slot).map((l) => l['workerPid'])).size)
  t.ok(pidsPerSlot.every((n) => n >= 3), `every slot had at least 3 pids: ${pidsPerSlot}`)
  t.notOk((await status(lb.admin)).workers.some((w) => firstPids.has(w.pid)), 'no first-generation pid left')

  // one slot at a time: recycles never overlap, and never more than one slot is without a ready worker
  const marks = lb.logs.filter((l) => l['msg'] === 'recycling worker' || l['msg'] === 'worker recycled').map((l) => l['msg'] === 'recycling worker' ? '(' : ')')
  t.match(marks.join(''), /^(\(\))+\(?$/, 'recycles strictly one after another')
  let worst = 0
  let maxWorkers = 0
  for (const s of snapshots) {
    const outOfRotation = [1, 2, 3].filter((slot) => !s.workers.some((w) => w.slot === slot && w.state === 'ready')).length
    worst = Math.max(worst, outOfRotation)
    maxWorkers = Math.max(maxWorkers, s.workers.length)
  }
  t.ok(snapshots.length > 20, `${snapshots.length} snapshots of /status`)
  t.ok(worst <= 1, `never more than one slot out of rotation (worst: ${worst})`)
  t.ok(maxWorkers <= 4, `surge of one: at most 4 processes at once (${maxWorkers})`)
  const stopped = lb.logs.filter((l) => l['msg'] === 'worker stopped').map((l) => String(l['worker']))
  assertNoRequestAfterDrain(t, lb, stopped)
})

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
  t.same(recycles.map((l) => l['reason']), ['maxAgeSeconds', 'maxAgeSeconds'], 'both first workers recycled for their age')
  assertNoRequestAfterDrain(t, lb, first.map((w) => w.id))
})
