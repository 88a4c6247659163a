import t from 'tap'
import { startClaylb } from '../helpers/claylb.js'
import { startRedis } from '../helpers/redis.js'
import { sidOf, call } from '../helpers/session-app.js'
import { status, until, type WorkerRow } from '../workers/load.js'
import { sleep } from '../helpers/http.js'

const COMMAND_TIMEOUT_MS = 500

// The real CLI, 3 real workers running the demo app, a real redis-server; SESSION_SECRET unset, so the
// secret made at start must reach every worker for one cookie to work on all of them.
const redis = await startRedis({ useEnv: false })
t.teardown(() => redis.close())
const lb = await startClaylb({
  args: ['--workers', '3'],
  config: { log: { access: false }, redis: { commandTimeoutMs: COMMAND_TIMEOUT_MS } },
  env: { REDIS_URL: redis.url, SESSION_SECRET: '' },
})
t.teardown(() => lb.stop())

t.test('a random secret made at start, with a warning, shared by the workers', async (t) => {
  t.ok(lb.logs.some((l) => l['level'] === 40 && /SESSION_SECRET is not set/.test(String(l['msg']))), 'warned')
})

t.test('one cookie jar, 60 sequential POST /session/counter over 3 workers, each killed once: 60', async (t) => {
  let cookie: string | undefined
  const answeredBy: string[] = []
  const wrong: string[] = []
  for (let i = 1; i <= 60; i++) {
    if (i === 16 || i === 31 || i === 46) {
      const slot = (i - 1) / 15
      // the slot's worker is ready (on a busy machine one may still be starting after the last kill)
      const isVictim = (w: WorkerRow): boolean => w.slot === slot && w.state === 'ready'
      const victim = (await until(() => status(lb.admin), (s) => s.workers.some(isVictim), 30_000, `a ready worker in slot ${slot}`)).workers.find(isVictim)!
      process.kill(victim.pid, 'SIGKILL')
      await until(() => status(lb.admin),
        (s) => s.workers.filter((w) => w.state === 'ready').length === 3 && !s.workers.some((w) => w.id === victim.id), 20_000, `slot ${slot} replaced`)
    }
    const r = await call(lb.url, 'POST', '/session/counter', cookie)
    cookie ??= sidOf(r)
    if (r.status !== 200 || r.data['count'] !== i) wrong.push(`#${i}: ${r.status} ${r.body}`)
    answeredBy.push(String(r.headers['x-worker-id']))
    if (r.data['worker'] !== r.headers['x-worker-id']) wrong.push(`#${i}: worker ${String(r.data['worker'])} vs header ${String(r.headers['x-worker-id'])}`)
  }
  t.same(wrong, [], 'every step counted once, in order')
  t.equal(new Set(answeredBy.slice(0, 15)).size, 3, 'answered by all 3 workers before the first kill')
  t.ok(new Set(answeredBy).size >= 6, `and by the replacements after (${new Set(answeredBy).size} workers in all)`)
  const final = await call(lb.url, 'GET', '/session', cookie)
  t.same(final.data, { count: 60 }, 'still 60')
})

t.test('50 concurrent POST /session/counter on one session through claylb: exactly 50', async (t) => {
  const first = await call(lb.url, 'GET', '/session')
  t.same(first.data, {})
  const seed = await call(lb.url, 'POST', '/session/counter')
  const cookie = sidOf(seed)!
  const replies = await Promise.all(Array.from({ length: 49 }, () => call(lb.url, 'POST', '/session/counter', cookie)))
  t.same(replies.filter((r) => r.status !== 200).map((r) => r.body), [])
  t.same(replies.map((r) => Number(r.data['count'])).sort((a, b) => a - b), Array.from({ length: 49 }, (_, i) => i + 2))
  t.same((await call(lb.url, 'GET', '/session', cookie)).data, { count: 50 })
})

t.test('Redis stopped: session routes 503 within the timeout, stateless routes answer; back without a restart', async (t) => {
  const cookie = sidOf(await call(lb.url, 'POST', '/session/counter'))!
  await redis.stop()
  for (const [method, path] of [['GET', '/session'], ['POST', '/session/counter']] as const) {
    const began = Date.now()
    const r = await call(lb.url, method, path, cookie)
    const took = Date.now() - began
    t.equal(r.status, 503, `${method} ${path}: 503`)
    t.equal(r.headers['content-type'], 'application/problem+json')
    t.match(r.data, { type: 'urn:claylb:problem:state-unavailable' })
    t.ok(r.headers['x-worker-id'], 'answered by a worker')
    t.ok(took < COMMAND_TIMEOUT_MS + 1500, `in ${took} ms (command timeout ${COMMAND_TIMEOUT_MS} ms)`)
  }
  for (let i = 0; i < 6; i++) t.equal((await call(lb.url, 'GET', '/')).status, 200, 'GET / still answers')

  await redis.start()
  let back
  const deadline = Date.now() + 10_000
  do {
    await sleep(100)
    back = await call(lb.url, 'POST', '/session/counter')
  } while (back.status !== 200 && Date.now() < deadline)
  t.equal(back.status, 200, 'sessions work again, claylb not restarted')
  t.equal(back.data['count'], 1, 'a new session (the restarted Redis kept nothing)')
  // each worker's client reconnects on its own backoff (later on a busy machine): every worker serves
  // sessions again, none restarted, once its client is back
  const workers = new Set<string>()
  let again: Array<Awaited<ReturnType<typeof call>>>
  const everyWorker = Date.now() + 30_000
  do {
    again = await Promise.all(Array.from({ length: 6 }, () => call(lb.url, 'GET', '/session', sidOf(back!)!)))
    for (const r of again) if (r.status === 200) workers.add(String(r.headers['x-worker-id']))
    if (again.every((r) => r.status === 200)) break
    await sleep(100)
  } while (Date.now() < everyWorker)
  t.same(again.map((r) => r.status), [200, 200, 200, 200, 200, 200], `on every worker (${[...workers].sort().join(', ')})`)
  // worker log lines arrive through their own pipes: wait for them rather than race them
  // a worker whose client had connected says "lost"; one started since says "not reachable yet"
  t.ok(await lb.waitForLog((l) => /^state tier (lost|not reachable yet)/.test(String(l['msg']))), 'the loss is logged')
  t.ok(await lb.waitForLog((l) => l['msg'] === 'state tier reachable again'), 'and the return')
})
