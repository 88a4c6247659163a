import t from 'tap'
import { startClaylb } from '../helpers/claylb.js'
import { req } from '../helpers/http.js'
import { assertNoRequestAfterDrain, status, steadyLoad, type Status } from './load.js'

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

t.test('maxRequests 50, 3 workers, 600+ requests: every slot recycled twice, one at a time, 0 failed', async (t) => {
  const lb = await startClaylb({ config: { workers: { count: 3, maxRequests: 50 }, log: { access: false } } })
  t.teardown(() => lb.stop())
  const first = (await status(lb.admin)).workers
  const recycled = (slot: number): number => lb.logs.filter((l) => l['msg'] === 'worker recycled' && l['slot'] === slot).length
  // paced by progress: at least 600 requests, and on until every slot was recycled twice (a worker asks
  // for its replacement at its 50th-55th request, but keeps serving until the replacement is ready, which
  // takes longer on a busy machine); 6,000 at the most
  let answered = 0
  const load = steadyLoad(lb.url, {
    total: 6000,
    gapMs: 8,
    onAnswer: (_a, n) => { answered = n },
    stop: () => answered >= 600 && [1, 2, 3].every((slot) => recycled(slot) >= 2),
  })
  const snapshots = await watch(lb.admin, load)
  const r = await load
  t.equal(r.failed.length, 0, `0 failed: ${JSON.stringify(r.failed.slice(0, 3))}`)
  t.ok(r.answers.length >= 600, `${r.answers.length} requests`)
  t.same([1, 2, 3].map(recycled).map((n) => n >= 2), [true, true, true], `two recycles per slot: ${[1, 2, 3].map(recycled)}`)
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

t.test('a second recycle request for a worker already being recycled is refused (409) until it is done', async (t) => {
  const lb = await startClaylb({ config: { workers: { count: 2 }, log: { access: false } } })
  t.teardown(() => lb.stop())
  const { id } = (await status(lb.admin)).workers[0]!
  const recycle = (): Promise<number> => req(`${lb.admin}/workers/${id}/recycle`, { method: 'POST' }).then((r) => r.status)
  t.equal(await recycle(), 202, 'the first request is accepted')
  t.equal(await recycle(), 409, 'a second one right after is refused, not accepted and dropped (its recycle has begun)')
  // its replacement is starting: the old worker still serves, still 'ready', and is still being recycled
  await lb.waitForLog((l) => l['msg'] === 'recycling worker' && l['worker'] === id)
  t.equal((await status(lb.admin)).workers.find((w) => w.id === id)?.state, 'ready', `${id} still serves while its replacement starts`)
  t.equal(await recycle(), 409, 'and again while the replacement starts')
  const done = await lb.waitForLog((l) => l['msg'] === 'worker recycled' && l['worker'] === id)
  t.equal(await recycle(), 404, 'once recycled, the worker is gone')
  t.equal(lb.logs.filter((l) => l['msg'] === 'recycling worker' && l['worker'] === id).length, 1, 'recycled exactly once')
  t.ok(done['replacement'], `replaced by ${String(done['replacement'])}`)
})
