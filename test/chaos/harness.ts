/**
 * One chaos scenario: the real CLI with 3 demo workers and a private redis-server, loaded by the mixed
 * client for a bounded time while `fault` runs, then the invariants every scenario shares:
 * no failed idempotent GET, no lost or doubled session increment, no order executed twice (the keyed
 * route is `upstreamDedupes`, as the demo app dedupes), every failure a documented problem+json, fds
 * and RSS bounded.
 *
 * Soak mode (not in CI): CLAYLB_SOAK_SECONDS=N runs each scenario for N seconds; CLAYLB_SOAK_OUT=dir
 * writes dir/<scenario>.json (requests, failures by kind, duplicates, p50/p99, RSS over time).
 */
import type { Test } from 'tap'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { startClaylb, type Claylb } from '../helpers/claylb.js'
import { okJson, sleep } from '../helpers/http.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'
import { status, until, type Status } from '../workers/load.js'
import { fdCount, MIN_LOAD, mixedLoad, percentile, rssKiB, type FaultRunning, type MixedResult, type SlowGets } from './mixed-load.js'

export const SOAK_SECONDS = Number(process.env['CLAYLB_SOAK_SECONDS'] ?? 0)

export interface FaultContext {
  lb: Claylb
  redis: RedisServer
  /** the config and environment `lb` runs with (to start more instances on the same Redis) */
  config: Record<string, unknown>
  env: NodeJS.ProcessEnv
  /**
   * `running(goalMet)`: go on faulting. True while the load's minimum time lasts, and after it while
   * `goalMet` is false (the fault has not done what the scenario asserts yet), up to a hard cap.
   */
  running: FaultRunning
  /** the load's result so far (requests sent, answers seen): for pacing faults by progress */
  live: MixedResult
}

export interface Scenario {
  name: string
  /** seconds of load in CI (soak mode overrides) */
  seconds: number
  /** merged over the base config, one level deep */
  config?: Record<string, Record<string, unknown>>
  /** a restartable Redis whose data survives the restart */
  persistRedis?: boolean
  /** extra GET lanes on a slow route (default: none) */
  slowGets?: SlowGets
  /** GETs that may fail, with why (default: none may) */
  allowFailedGets?: (r: MixedResult) => boolean
  fault: (c: FaultContext) => Promise<void>
  /** what the fault did, added to the summary (e.g. workers killed) */
  faultSummary?: () => Record<string, unknown>
  /** orders the fault's own requests executed, added into the bounds on /orders/count */
  faultOrders?: () => { min: number, max: number }
}

export interface ChaosReport {
  lb: Claylb
  redis: RedisServer
  r: MixedResult
  orders: number
  summary: Record<string, unknown>
}

const BASE: Record<string, Record<string, unknown>> = {
  // every fault may look like an unstable restart: a short, capped backoff, and the slot is never given up
  workers: { count: 3, restartBackoffMs: 100, restartBackoffMaxMs: 500, maxUnstableRestarts: 100_000, faults: true },
  idempotency: { routes: [{ match: 'POST /orders', required: true, upstreamDedupes: true }], lockSeconds: 2 },
  log: { access: false },
}

export async function chaosRun (t: Test, s: Scenario): Promise<ChaosReport> {
  const seconds = SOAK_SECONDS > 0 ? SOAK_SECONDS : s.seconds
  const redis = await startRedis({ useEnv: false, persist: s.persistRedis ?? false })
  t.teardown(() => redis.close())
  const config: Record<string, unknown> = { redis: { url: redis.url, commandTimeoutMs: 3000 } }
  for (const [k, v] of Object.entries(BASE)) config[k] = { ...v }
  for (const [k, v] of Object.entries(s.config ?? {})) config[k] = { ...(config[k] as object | undefined), ...v }
  const env = { REDIS_URL: redis.url, SESSION_SECRET: 'chaos-secret-0123456789-abcdefghijklmnop' }
  const lb = await startClaylb({ config, env })
  t.teardown(() => lb.stop())

  // every slot ready and in rotation (a busy machine takes longer to pass the first health checks),
  // then warm every worker, then the baseline
  const count = (s.config?.['workers']?.['count'] as number | undefined) ?? 3
  const allIn = (st: Status): boolean => st.workers.filter((w) => w.state === 'ready').length === count && st.upstreams.length >= count && st.upstreams.every((u) => u.healthy)
  await until(() => status(lb.admin), allIn, 60_000, `all ${count} slots ready and healthy`)
  for (let i = 0; i < 30; i++) await okJson(`${lb.url}/`)
  await sleep(500)
  const rssStart = rssKiB(lb.pid)
  const fdStart = fdCount(lb.pid)
  const t0 = Date.now()
  const rssOverTime = [{ s: 0, rssKiB: rssStart, fds: fdStart }]
  const sampler = setInterval(() => rssOverTime.push({ s: Math.round((Date.now() - t0) / 1000), rssKiB: rssKiB(lb.pid), fds: fdCount(lb.pid) }), 1000)

  let r: MixedResult
  const loadStart = Date.now()
  try {
    r = await mixedLoad(lb.url, seconds, (running, live) => s.fault({ lb, redis, running, live, config, env }), s.slowGets)
  } finally {
    clearInterval(sampler)
  }
  const loadSeconds = Math.round((Date.now() - loadStart) / 100) / 10
  await until(() => status(lb.admin), (st) => st.workers.filter((w) => w.state === 'ready').length === count, 30_000, `all ${count} slots ready again`)
  await sleep(500)
  const rssEnd = rssKiB(lb.pid)
  const fdEnd = fdCount(lb.pid)
  rssOverTime.push({ s: Math.round((Date.now() - t0) / 1000), rssKiB: rssEnd, fds: fdEnd })
  const orders = (await okJson<{ count: number }>(`${lb.url}/orders/count`)).count
  const session = await okJson<{ count: number }>(`${lb.url}/session`, { headers: { cookie: r.cookie } })

  t.ok(r.gets > MIN_LOAD.gets, `GETs sent: ${r.gets}`)
  if (s.allowFailedGets?.(r) !== true) t.same(r.failedGets, [], 'no failed idempotent GET')

  // one session, sequential: a failed increment may or may not have counted (the worker or Redis can
  // die after the write, before the answer), a successful one always did
  const successes = r.sessionCounts.length
  t.ok(successes > MIN_LOAD.sessionIncrements, `session increments that succeeded: ${successes}, failed: ${r.sessionFailed}`)
  t.ok(r.sessionCounts.every((c, i) => i === 0 || c > r.sessionCounts[i - 1]!), 'session counts only grow')
  t.ok(session.count >= successes, `no lost increment: ${session.count} >= ${successes}`)
  t.ok(session.count <= successes + r.sessionFailed, `nothing counted twice: ${session.count} <= ${successes} + ${r.sessionFailed} failed`)

  t.same(r.abandoned, [], 'every key reached a final answer within its retries')
  const fo = s.faultOrders?.() ?? { min: 0, max: 0 }
  t.ok(r.keys > MIN_LOAD.keys, `keys: ${r.keys}, uncertain on the way (502, 504 or outcome-unknown): ${r.uncertainKeys}, ended outcome-unknown: ${r.outcomeUnknownKeys}, stored state-outcome-unknown: ${r.unknownKeys}`)
  t.ok(orders >= r.keys - r.unknownKeys - r.outcomeUnknownKeys + fo.min, `every key executed at least once (but those whose outcome is unknown): ${orders} >= ${r.keys} - ${r.unknownKeys} - ${r.outcomeUnknownKeys} + ${fo.min} by the fault`)
  t.ok(orders <= r.keys + fo.max, `no order executed twice: ${orders} <= ${r.keys} + ${fo.max} by the fault`)

  t.same(r.undocumented, [], 'every non-2xx answer is a documented problem+json')

  t.ok(fdEnd <= fdStart + 64, `fds bounded: ${fdStart} → ${fdEnd}`)
  t.ok(rssEnd <= rssStart + 128 * 1024, `RSS bounded: ${Math.round(rssStart / 1024)} → ${Math.round(rssEnd / 1024)} MiB`)

  const sorted = r.latenciesMs.sort((a, b) => a - b)
  const summary = {
    scenario: s.name,
    seconds,
    // at least `seconds`: longer when the fault needed longer to reach its goal (a busy machine)
    loadSeconds,
    requests: sorted.length,
    failuresByKind: r.failures,
    keys: r.keys,
    uncertainKeys: r.uncertainKeys,
    outcomeUnknownKeys: r.outcomeUnknownKeys,
    unknownKeys: r.unknownKeys,
    orders,
    // orders beyond one per key: must be 0
    duplicates: Math.max(0, orders - r.keys - fo.max),
    session: { successes, failed: r.sessionFailed, count: session.count },
    latencyMs: { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99) },
    rss: rssOverTime,
    ...s.faultSummary?.(),
  }
  t.comment(JSON.stringify({ ...summary, rss: { startKiB: rssStart, endKiB: rssEnd, fds: [fdStart, fdEnd] } }))
  const out = process.env['CLAYLB_SOAK_OUT']
  if (out) {
    mkdirSync(out, { recursive: true })
    writeFileSync(join(out, `${s.name}.json`), JSON.stringify(summary, null, 2))
  }
  return { lb, redis, r, orders, summary }
}
