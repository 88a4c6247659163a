/**
 * With two proxy processes every claylb_* metric observed in them adds up in the primary's /metrics:
 * the Redis command histogram is summed bucket by bucket from both processes' plain numbers, so its
 * _count equals the scripts Redis itself counted (INFO commandstats), and each process carried some of
 * the keyed requests. prom-client's default metrics of every process, the primary's included, are
 * there once each under a `pid` label. Paced by answers, never by time.
 */
import t from 'tap'
import { request } from 'undici'
import { startBackend } from '../helpers/backend.js'
import { startClaylb } from '../helpers/claylb.js'
import { json } from '../helpers/http.js'
import { connectRedis } from '../helpers/ioredis.js'
import { family, scrape, value, type Scrape } from '../helpers/metrics.js'
import { startRedis } from '../helpers/redis.js'

interface Status { processes: Array<{ pid: number, requests: number }> }

/** scripts run by Redis (ioredis sends EVALSHA, EVAL when the script is not cached yet) */
function scriptCalls (info: string): number {
  let n = 0
  for (const m of info.matchAll(/^cmdstat_(?:evalsha|eval):calls=(\d+)/gm)) n += Number(m[1])
  return n
}

const histogramCount = (s: Scrape): number => value(s, 'claylb_redis_command_duration_seconds_count')

t.test('the Redis command histogram adds up over both proxy processes', async (t) => {
  const redis = await startRedis({ useEnv: false })
  const upstream = await startBackend((_req, res) => { res.setHeader('content-type', 'text/plain'); res.end('ok') })
  const lb = await startClaylb({
    args: ['--processes', '2', '--upstream', upstream.url],
    config: { redis: { url: redis.url }, idempotency: { routes: [{ match: 'POST /orders', required: true }] }, log: { access: false } },
  })
  const admin = await connectRedis(redis.url)
  t.teardown(async () => { admin.disconnect(); await lb.stop(); await upstream.close(); await redis.close() })

  let key = 0
  const post = async (): Promise<number> => {
    // a connection per request: each is accepted anew, by either process
    const r = await request(`${lb.url}/orders`, { method: 'POST', reset: true, headers: { 'idempotency-key': `sum-${process.pid}-${++key}`, 'content-type': 'application/json' }, body: '{"n":1}' })
    await r.body.text()
    return r.statusCode
  }
  // the first keyed request loads the scripts into Redis (EVALSHA, NOSCRIPT, EVAL); count from here
  t.equal(await post(), 200, 'a keyed request executes')
  await admin.config('RESETSTAT')
  const before = await scrape(lb.admin)
  const servedBefore = new Map((await json<Status>(`${lb.admin}/status`)).processes.map((p) => [p.pid, p.requests]))

  const total = 200
  const lanes = 8
  let sent = 0
  let ok = 0
  await Promise.all(Array.from({ length: lanes }, async () => {
    while (sent < total) {
      sent++
      if (await post() === 200) ok++
    }
  }))
  t.equal(ok, total, 'every keyed request executed')

  const after = await scrape(lb.admin)
  const st = await json<Status>(`${lb.admin}/status`)
  t.equal(st.processes.length, 2)
  for (const p of st.processes) t.ok(p.requests - (servedBefore.get(p.pid) ?? 0) > 0, `process ${p.pid} served keyed requests`)

  const redisCounted = scriptCalls(await admin.info('commandstats'))
  t.ok(redisCounted >= total * 2, `Redis ran ${redisCounted} scripts (a claim and a record per request)`)
  t.equal(histogramCount(after) - histogramCount(before), redisCounted, "the histogram's _count is every script Redis ran, from both processes")
  const inf = value(after, 'claylb_redis_command_duration_seconds_bucket', { le: '+Inf' })
  t.equal(inf, histogramCount(after), 'the +Inf bucket equals _count')
  t.equal(value(after, 'claylb_redis_command_duration_seconds_count', { command: 'idem_begin' }) - value(before, 'claylb_redis_command_duration_seconds_count', { command: 'idem_begin' }), total, 'one claim per request')
  t.equal(value(after, 'claylb_redis_command_duration_seconds_count', { command: 'idem_finish' }) - value(before, 'claylb_redis_command_duration_seconds_count', { command: 'idem_finish' }), total, 'one record per request')
  t.ok(value(after, 'claylb_redis_command_duration_seconds_sum') > 0, 'latencies summed')
  t.equal(value(after, 'claylb_idempotency_requests_total', { outcome: 'executed' }), total + 1, 'executions counted over both processes')
  t.equal(value(after, 'claylb_redis_errors_total'), 0, 'no Redis command failed')
})

t.test("every process's default metrics, each under its pid", async (t) => {
  const upstream = await startBackend()
  const lb = await startClaylb({ args: ['--processes', '2', '--upstream', upstream.url], config: { log: { access: false } } })
  t.teardown(async () => { await lb.stop(); await upstream.close() })
  const pids = (await json<Status>(`${lb.admin}/status`)).processes.map((p) => String(p.pid))
  t.equal(pids.length, 2)
  const s = await scrape(lb.admin)
  for (const name of ['claylb_process_cpu_user_seconds_total', 'claylb_process_resident_memory_bytes', 'claylb_nodejs_heap_size_used_bytes', 'claylb_process_start_time_seconds']) {
    const series = s.samples.filter((m) => m.name === name)
    t.same(series.map((m) => m.labels['pid']).sort(), [String(lb.pid), ...pids].sort(), `${name}: one series per process (primary and both proxy processes)`)
    t.ok(series.every((m) => m.value > 0), `${name}: every value is the process's own`)
    t.equal(s.text.split('\n').filter((l) => l === `# TYPE ${name} ${family(s, name).type.toLowerCase()}`).length, 1, `${name}: one family`)
  }
  const lag = s.samples.filter((m) => m.name === 'claylb_nodejs_eventloop_lag_seconds')
  t.equal(new Set(lag.map((m) => m.labels['pid'])).size, 3, 'gauges prom-client would average are per process too')
})
