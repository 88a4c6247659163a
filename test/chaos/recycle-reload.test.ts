/**
 * Chaos: workers recycled after maxRequests (with jitter) under the mixed load plus slow GETs, so every
 * drain has requests in flight; a SIGHUP rolls in a new generation whenever the serving one has served
 * a while and seen two recycles, and one POST /reload is queued behind a roll in progress (harness.ts).
 * A recycle or a reload must be invisible: not one non-2xx answer, not one retry, every count exact.
 */
import t from 'tap'
import { json, req, sleep, type Reply } from '../helpers/http.js'
import { assertNoRequestAfterDrain, status, until, type Status } from '../workers/load.js'
import { chaosRun } from './harness.js'

const COUNT = 3
const SLOW_MS = 400
const SECONDS = 10
/** /status snapshots the surge checks need at the least */
const SNAPSHOTS = 100

/** the supervisor's own account of one-at-a-time work: "(" ")" a recycle, "[" "]" a rollout */
const MARKS: Record<string, string> = { 'recycling worker': '(', 'worker recycled': ')' }
const mark = (l: Record<string, unknown>): string | undefined => {
  const msg = String(l['msg'])
  if (/^rolling out generation \d+$/.test(msg)) return '['
  if (/^rollout of generation \d+ (complete|abandoned)/.test(msg)) return ']'
  return MARKS[msg]
}

t.test('recycles after maxRequests, SIGHUPs and a queued POST /reload under load: invisible to every client', async (t) => {
  const t0 = Date.now()
  const snapshots: Status[] = []
  let sighups = 0
  let reload: { status: number, body: string, queuedBehind: number, sentAt: number } | undefined

  const { lb, r, orders, summary } = await chaosRun(t, {
    name: 'recycle-reload',
    seconds: SECONDS,
    config: { workers: { count: COUNT, maxRequests: 250, recycleJitterPercent: 20 } },
    slowGets: { lanes: 4, path: `/delay/${SLOW_MS}` },
    async fault ({ lb, running }) {
      // paced by progress: a SIGHUP once two recycles happened since the last roll, the load going on
      // until one SIGHUP and the POST /reload queued behind it have rolled (soak mode: more SIGHUPs)
      const goal = (): boolean => reload !== undefined && snapshots.length >= SNAPSHOTS
      const recycles = (): number => lb.logs.filter((l) => l['msg'] === 'worker recycled').length
      let generation = 1
      let rolled = false
      const roller = async (): Promise<void> => {
        try {
          let since = Date.now()
          let recyclesBefore = recycles()
          while (running(goal())) {
            await sleep(50)
            if (Date.now() - since < 1500 || recycles() - recyclesBefore < 2) continue
            const next = generation + 1
            lb.proc.kill('SIGHUP')
            sighups++
            if (reload === undefined) {
              // queue one admin reload behind the roll while it is under way
              await until(() => status(lb.admin), (s) => s.workers.some((w) => w.generation === next), 10_000, `generation ${next} rolling`)
              const sentAt = Date.now()
              const answer: Reply = await req(`${lb.admin}/reload`, { method: 'POST' })
              reload = { status: answer.status, body: answer.body, queuedBehind: next, sentAt }
              generation = next + 1
            } else {
              generation = next
            }
            await lb.waitForLog((l) => l['msg'] === `rollout of generation ${generation} complete`, 20_000)
            since = Date.now()
            recyclesBefore = recycles()
          }
        } finally {
          rolled = true
        }
      }
      const watcher = async (): Promise<void> => {
        while (!rolled) {
          snapshots.push(await status(lb.admin))
          await sleep(40)
        }
      }
      await Promise.all([roller(), watcher()])
    },
    faultSummary: () => ({ sighups, postReload: reload?.status, snapshots: snapshots.length }),
  })

  // the last roll's old generation, or the last recycle's old worker, may still be finishing its drain
  const end = await until(() => status(lb.admin), (s) => s.workers.length === COUNT, 15_000, `only ${COUNT} workers left`)

  // invisible: not one non-2xx answer or transport error, not even a documented one
  t.same(r.failures, {}, 'no failed request of any kind', {
    problems: r.problems.slice(0, 5),
    logs: lb.logs.filter((l) => (l['level'] as number) >= 40).slice(0, 10),
  })
  t.same(r.undocumented, [], 'no transport error')
  t.ok((r.slowGets ?? 0) > 20, `slow GETs (${SLOW_MS} ms, in flight through drains): ${r.slowGets}`)
  t.equal(r.sessionFailed, 0, 'no failed session increment')
  const session = await json<{ count: number }>(`${lb.url}/session`, { headers: { cookie: r.cookie } })
  t.equal(session.count, r.sessionCounts.length, `session count exact: ${session.count}`)
  t.equal(orders, r.keys, `orders = keys exactly: ${orders}`)
  t.equal(r.uncertainKeys + r.unknownKeys, 0, 'no key saw an uncertain outcome')

  const metrics = (await req(`${lb.admin}/metrics`)).body
  const retries = metrics.split('\n').filter((l) => l.startsWith('claylb_retries_total{'))
  t.ok(retries.length > 0, 'the retry counter is exported')
  t.equal(retries.reduce((n, l) => n + Number(l.split(' ').pop()), 0), 0, 'claylb retried nothing')

  // rolls and recycles happened, and the generation counts every reload (in CI's 10 s there is time for
  // one SIGHUP and the reload queued behind it; soak mode repeats the SIGHUPs)
  t.ok(sighups >= 1, `SIGHUPs: ${sighups}`)
  t.ok(reload !== undefined, 'a POST /reload was queued behind a roll')
  t.equal(reload?.status, 200, `the queued POST /reload rolled a generation of its own: ${reload?.body}`)
  t.same(JSON.parse(reload?.body ?? '{}'), { generation: (reload?.queuedBehind ?? 0) + 1 }, 'its answer names the generation it rolled')
  const rolledBefore = lb.logs.find((l) => l['msg'] === `rollout of generation ${reload?.queuedBehind} complete`)
  t.ok((reload?.sentAt ?? Infinity) < Number(rolledBefore?.['time']), 'it was sent while the SIGHUP\'s roll was under way')
  t.equal(end.generation, 1 + sighups + 1, `generation ${end.generation} = 1 + ${sighups} SIGHUPs + 1 POST /reload`)
  t.ok(end.workers.every((w) => w.generation === end.generation && w.state === 'ready'), 'every worker left is of the last generation, ready')
  const recycled = lb.logs.filter((l) => l['msg'] === 'worker recycled')
  t.ok(recycled.length >= 2, `recycles: ${recycled.length}`)
  t.same(new Set(lb.logs.filter((l) => l['msg'] === 'recycling worker').map((l) => l['reason'])), new Set(['maxRequests']), 'every recycle was asked for by maxRequests')
  t.same(lb.logs.filter((l) => l['level'] as number >= 40).map((l) => l['msg']), [], 'no warning or error logged (no crash, no abandoned roll, no drain timeout)')

  // one replacement at a time, by the supervisor's log: recycles and rollouts never overlap
  const marks = lb.logs.map(mark).filter((m) => m !== undefined).join('')
  t.match(marks, /^(\(\)|\[\])+$/, `recycles and rollouts strictly one after another: ${marks}`)

  // surge first, by /status every 40 ms: the configured count ready throughout, at most one replacement
  let minReady = Infinity
  let maxProcs = 0
  let maxReplacing = 0
  let maxOneGeneration = 0
  for (const s of snapshots) {
    minReady = Math.min(minReady, s.workers.filter((w) => w.state === 'ready').length)
    maxProcs = Math.max(maxProcs, s.workers.length)
    const gens = new Set(s.workers.map((w) => w.generation))
    // a second generation is one replacement; so is a slot with two processes of one generation
    const doubled = s.workers.filter((w, i) => s.workers.some((o, j) => j < i && o.slot === w.slot && o.generation === w.generation)).length
    maxReplacing = Math.max(maxReplacing, gens.size - 1 + doubled)
    if (gens.size === 1) maxOneGeneration = Math.max(maxOneGeneration, s.workers.length)
  }
  t.ok(snapshots.length >= SNAPSHOTS, `/status snapshots: ${snapshots.length}`)
  t.ok(minReady >= COUNT, `ready workers never fewer than ${COUNT} (fewest: ${minReady})`)
  t.ok(maxProcs <= 2 * COUNT, `at most ${2 * COUNT} worker processes at once (most: ${maxProcs})`)
  t.ok(maxOneGeneration <= COUNT + 1, `a recycle surges by one (most outside a roll: ${maxOneGeneration})`)
  t.ok(maxProcs > COUNT + 1, `a roll surged a whole generation (most: ${maxProcs})`)
  t.equal(maxReplacing, 1, 'one replacement at a time')

  // every new generation was ready before the old one began to drain
  for (const l of lb.logs.filter((l) => /^generation \d+ serving; draining generation/.test(String(l['msg'])))) {
    const at = lb.logs.indexOf(l)
    const ready = lb.logs.slice(0, at).filter((w) => w['msg'] === 'worker ready' && w['generation'] === l['generation']).length
    t.equal(ready, COUNT, `generation ${l['generation']}: ${ready} workers ready before generation ${Number(l['generation']) - 1} drained`)
  }
  // and every recycle's replacement was ready before its predecessor stopped
  for (const l of recycled) {
    const readyAt = lb.logs.findIndex((w) => w['msg'] === 'worker ready' && w['worker'] === l['replacement'])
    const stoppedAt = lb.logs.findIndex((w) => w['msg'] === 'worker stopped' && w['worker'] === l['worker'])
    t.ok(readyAt >= 0 && readyAt < stoppedAt, `${l['replacement']} ready before ${l['worker']} stopped`)
  }

  // every worker that is gone was drained: no request after its drain began, exit code 0
  const current = new Set(end.workers.map((w) => w.id))
  const gone = lb.logs.filter((l) => l['msg'] === 'worker spawned').map((l) => String(l['worker'])).filter((id) => !current.has(id))
  t.equal(gone.length, recycled.length + COUNT * (end.generation - 1), `workers drained and stopped: ${gone.length} (one per recycle, ${COUNT} per roll)`)
  assertNoRequestAfterDrain(t, lb, gone)
  t.comment(JSON.stringify({ recycles: recycled.length, generations: end.generation, slowGets: r.slowGets, minReady, maxProcs, loadS: summary['seconds'], wallS: (Date.now() - t0) / 1000 }))
})
