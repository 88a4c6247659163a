/**
 * Chaos: the real CLI with 3 demo workers and a private redis-server, loaded by the mixed client for a
 * bounded time while a random ready worker is SIGKILLed every second.
 *
 * Soak mode (not in CI): CLAYLB_SOAK_SECONDS=N runs the same for N seconds; CLAYLB_SOAK_OUT=path writes
 * a JSON summary (requests, failures by kind, duplicates, p50/p99, RSS over time).
 */
import t from 'tap'
import { writeFileSync } from 'node:fs'
import { startClaylb } from '../helpers/claylb.js'
import { json, sleep } from '../helpers/http.js'
import { startRedis } from '../helpers/redis.js'
import { status, until } from '../workers/load.js'
import { fdCount, mixedLoad, percentile, rssKiB } from './mixed-load.js'

const SECONDS = Number(process.env['CLAYLB_SOAK_SECONDS'] ?? 15)
const SOAK_OUT = process.env['CLAYLB_SOAK_OUT']

t.test(`kill -9 a random worker every second for ${SECONDS} s under GETs, session increments and keyed POSTs`, async (t) => {
  const redis = await startRedis({ useEnv: false })
  t.teardown(() => redis.close())
  const lb = await startClaylb({
    config: {
      // every kill is an unstable restart: a short, capped backoff, and the slot is never given up
      workers: { count: 3, restartBackoffMs: 100, restartBackoffMaxMs: 500, maxUnstableRestarts: 100_000 },
      redis: { url: redis.url, commandTimeoutMs: 3000 },
      idempotency: { routes: [{ match: 'POST /orders', required: true }], lockSeconds: 2 },
      log: { access: false },
    },
    env: { REDIS_URL: redis.url, SESSION_SECRET: 'chaos-secret-0123456789-abcdefghijklmnop' },
  })
  t.teardown(() => lb.stop())

  // warm every worker, then the baseline
  for (let i = 0; i < 30; i++) await json(`${lb.url}/`)
  await sleep(500)
  const rssStart = rssKiB(lb.pid)
  const fdStart = fdCount(lb.pid)
  const t0 = Date.now()
  const rssOverTime = [{ s: 0, rssKiB: rssStart, fds: fdStart }]

  const killed: number[] = []
  const r = await mixedLoad(lb.url, SECONDS, async (running) => {
    while (running()) {
      await sleep(1000)
      if (!running()) break
      rssOverTime.push({ s: Math.round((Date.now() - t0) / 1000), rssKiB: rssKiB(lb.pid), fds: fdCount(lb.pid) })
      // while another one is ready to serve: with none left a 503 would be the right answer
      const ready = (await status(lb.admin)).workers.filter((w) => w.state === 'ready')
      if (ready.length < 2) continue
      const victim = ready[Math.floor(Math.random() * ready.length)]!
      try { process.kill(victim.pid, 'SIGKILL'); killed.push(victim.pid) } catch { /* already gone */ }
    }
  })

  await until(() => status(lb.admin), (s) => s.workers.filter((w) => w.state === 'ready').length === 3, 30_000, 'all 3 slots ready again')
  await sleep(500)
  const rssEnd = rssKiB(lb.pid)
  const fdEnd = fdCount(lb.pid)
  rssOverTime.push({ s: Math.round((Date.now() - t0) / 1000), rssKiB: rssEnd, fds: fdEnd })
  const orders = (await json<{ count: number }>(`${lb.url}/orders/count`)).count
  const session = await json<{ count: number }>(`${lb.url}/session`, { headers: { cookie: r.cookie } })

  t.ok(killed.length >= Math.min(3, SECONDS - 1), `workers killed: ${killed.length}`)
  t.ok(r.gets > 100, `GETs sent: ${r.gets}`)
  t.same(r.failedGets, [], 'no failed idempotent GET')

  // one session, sequential: a failed increment may or may not have counted (the worker can die after
  // the write, before the answer), a successful one always did
  const successes = r.sessionCounts.length
  t.ok(successes > 20, `session increments that succeeded: ${successes}, failed: ${r.sessionFailed}`)
  t.ok(r.sessionCounts.every((c, i) => i === 0 || c > r.sessionCounts[i - 1]!), 'session counts only grow')
  t.ok(session.count >= successes, `no lost increment: ${session.count} >= ${successes}`)
  t.ok(session.count <= successes + r.sessionFailed, `nothing counted twice: ${session.count} <= ${successes} + ${r.sessionFailed} failed`)

  t.same(r.abandoned, [], 'every key reached a 2xx within its retries')
  t.ok(r.keys > 10, `keys: ${r.keys}, uncertain (502 or outcome-unknown): ${r.uncertainKeys}`)
  t.ok(orders >= r.keys, `every key executed at least once: ${orders} >= ${r.keys}`)
  t.ok(orders <= r.keys + r.uncertainKeys, `no duplicate beyond the documented unknown outcomes: ${orders} <= ${r.keys} + ${r.uncertainKeys}`)

  t.same(r.undocumented, [], 'every non-2xx answer is a documented problem+json')

  t.ok(fdEnd <= fdStart + 64, `fds bounded: ${fdStart} → ${fdEnd}`)
  t.ok(rssEnd <= rssStart + 128 * 1024, `RSS bounded: ${Math.round(rssStart / 1024)} → ${Math.round(rssEnd / 1024)} MiB`)

  const sorted = r.latenciesMs.sort((a, b) => a - b)
  const summary = {
    seconds: SECONDS,
    requests: sorted.length,
    failuresByKind: r.failures,
    workersKilled: killed.length,
    keys: r.keys,
    uncertainKeys: r.uncertainKeys,
    orders,
    // each one after a 502 or outcome-unknown (documented at-least-once once the lease ended)
    reExecutions: orders - r.keys,
    session: { successes, failed: r.sessionFailed, count: session.count },
    latencyMs: { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99) },
    rss: rssOverTime,
  }
  t.comment(JSON.stringify({ ...summary, rss: { startKiB: rssStart, endKiB: rssEnd, fds: [fdStart, fdEnd] } }))
  if (SOAK_OUT) writeFileSync(SOAK_OUT, JSON.stringify(summary, null, 2))
})
