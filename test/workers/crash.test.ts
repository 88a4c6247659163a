import t from 'tap'
import { join } from 'node:path'
import { startClaylb } from '../helpers/claylb.js'
import { sleep } from '../helpers/http.js'
import { status, steadyLoad, until } from './load.js'

const FIXTURES = join(import.meta.dirname, 'fixtures')

t.test('kill -9 of a worker under a steady stream of 500 GETs: 0 failed, replaced with a new pid', async (t) => {
  const lb = await startClaylb({ args: ['--workers', '3'] })
  t.teardown(() => lb.stop())
  const before = await status(lb.admin)
  const victim = before.workers[1]!
  let killedAt = 0
  const r = await steadyLoad(lb.url, {
    total: 500,
    concurrency: 2,
    gapMs: 2,
    onAnswer (_a, n) {
      if (n === 150) {
        process.kill(victim.pid, 'SIGKILL')
        killedAt = Date.now()
      }
    },
  })
  t.equal(r.failed.length, 0, `0 failed GETs: ${JSON.stringify(r.failed.slice(0, 3))}`)
  t.ok(killedAt > 0)
  // sentAt and killedAt are whole milliseconds: a request stamped in the kill's own millisecond may have
  // been stamped before it (the other lane runs in the same event loop), so only later ones count
  const late = r.answers.filter((a) => a.worker === victim.id && a.sentAt > killedAt)
  t.same(late, [], 'the dead worker answered nothing sent after its death')
  t.ok(r.answers.filter((a) => a.sentAt >= killedAt).length > 200, 'the stream went on after the kill')

  const after = await until(() => status(lb.admin),
    (s) => s.workers.filter((w) => w.state === 'ready').length === 3 && !s.workers.some((w) => w.id === victim.id), 20_000, 'a replacement')
  const replacement = after.workers.find((w) => w.slot === victim.slot)!
  t.not(replacement.pid, victim.pid, `slot ${victim.slot} has a new pid`)
  t.not(replacement.id, victim.id)
  t.notOk(after.upstreams.some((u) => u.id === victim.id), 'the dead worker left the balancer')
  const more = await steadyLoad(lb.url, { total: 30 })
  t.equal(more.failed.length, 0)
  t.equal(more.byWorker[replacement.id], 10, 'the replacement serves its share')
  const exited = lb.logs.find((l) => l['msg'] === 'worker exited' && l['worker'] === victim.id)
  t.equal(exited?.['exit'], 'killed by SIGKILL', 'the crash is logged')
  // the proxy's own access log: once the exit was seen, no request ended on the dead worker (read once
  // the log holds a line for every answer the replacement gave, however late the log's batches arrive
  // on a busy machine; a line's time is the engine's coarse clock, so it cannot tell which load it was)
  const servedByReplacement = r.answers.filter((a) => a.worker === replacement.id).length + more.byWorker[replacement.id]!
  let countedAt = -1
  let allLogged = false
  await lb.waitForLog(() => {
    // waitForLog asks once per log line: count once per new line, not once per line asked
    if (countedAt !== lb.logs.length) {
      countedAt = lb.logs.length
      allLogged = lb.logs.filter((l) => l['msg'] === 'request' && l['upstream'] === replacement.id).length >= servedByReplacement
    }
    return allLogged
  }, 30_000)
  const afterDeath = lb.logs.filter((l) => l['msg'] === 'request' && l['upstream'] === victim.id && Number(l['time']) > Number(exited?.['time']))
  t.same(afterDeath, [], 'no request was routed to the dead worker after its exit')
  t.comment(`requests retried on another worker after meeting the dying one: ${lb.logs.filter((l) => l['msg'] === 'request' && Number(l['attempts']) > 1).length}`)
})

t.test('an app that exits at boot: growing backoff, the slot is given up, the others keep serving', async (t) => {
  const lb = await startClaylb({
    config: {
      workers: { count: 3, app: join(FIXTURES, 'crash-slot-1.mjs'), restartBackoffMs: 200, maxUnstableRestarts: 4 },
      log: { access: false },
    },
  })
  t.teardown(() => lb.stop())
  // load on the healthy slots while slot 1 crash-loops
  const r = await steadyLoad(lb.url, { total: 60, gapMs: 20 })
  t.equal(r.failed.length, 0, 'nothing failed')
  t.equal(Object.keys(r.byWorker).length, 2, 'answered by the two healthy slots')
  const gaveUp = await lb.waitForLog((l) => l['msg']?.toString().includes('given up') === true, 30_000)
  t.equal(gaveUp['level'], 50, 'logged as an error')
  t.equal(gaveUp['slot'], 1)

  const slot1 = (msg: string): Array<Record<string, unknown>> => lb.logs.filter((l) => l['msg'] === msg && l['slot'] === 1)
  const spawns = slot1('worker spawned').map((l) => Number(l['time']))
  const exits = slot1('worker exited').map((l) => Number(l['time']))
  const restarts = slot1('restarting worker')
  const delays = restarts.map((l) => Number(l['delayMs']))
  t.same(delays, [200, 300, 450, 675], 'each delay is x1.5 the one before')
  t.equal(spawns.length, 5, 'the first try and 4 restarts, no more: no spin')
  t.equal(exits.length, 5)
  for (let i = 0; i < delays.length; i++) {
    t.ok(spawns[i + 1]! - exits[i]! >= delays[i]! - 5, `restart ${i + 1} waited ${spawns[i + 1]! - exits[i]!} ms >= ${delays[i]} ms`)
  }
  await sleep(500)
  t.equal(lb.logs.filter((l) => l['msg'] === 'worker spawned' && l['slot'] === 1).length, 5, 'nothing spawned for slot 1 after it was given up')
  const s = await status(lb.admin)
  t.same(s.workers.map((w) => w.slot).sort(), [2, 3], 'slots 2 and 3 serve')
})
