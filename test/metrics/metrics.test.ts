import t from 'tap'
import { startBackend, type Handler } from '../helpers/backend.js'
import { startClaylb } from '../helpers/claylb.js'
import { req } from '../helpers/http.js'
import { scrape, seriesCount, value, family } from '../helpers/metrics.js'

// answers /status/<code> with that code, anything else 200
const statusHandler: Handler = (q, s) => {
  q.resume()
  const m = /^\/status\/(\d{3})/.exec(q.url ?? '')
  s.statusCode = m ? Number(m[1]) : 200
  s.end('x')
}

t.test('/metrics: valid Prometheus text whose counters match exactly the requests sent', async (t) => {
  const a = await startBackend(statusHandler)
  const b = await startBackend(statusHandler)
  const lb = await startClaylb({ config: { upstreams: [{ url: a.url, id: 'a' }, { url: b.url, id: 'b' }], log: { access: false } } })
  t.teardown(async () => { await lb.stop(); await a.close(); await b.close() })

  const sent = { '2xx': 0, '4xx': 0, '5xx': 0 }
  for (let i = 0; i < 30; i++) { t.equal((await req(`${lb.url}/ok/${i}`)).status, 200); sent['2xx']++ }
  for (let i = 0; i < 7; i++) { t.equal((await req(`${lb.url}/status/404`)).status, 404); sent['4xx']++ }
  for (let i = 0; i < 4; i++) { t.equal((await req(`${lb.url}/status/500`)).status, 500); sent['5xx']++ }

  const s = await scrape(lb.admin)
  t.match(s.contentType, /^text\/plain; version=0\.0\.4/)
  t.equal(family(s, 'claylb_requests_total').type, 'COUNTER')
  for (const [cls, n] of Object.entries(sent)) t.equal(value(s, 'claylb_requests_total', { code_class: cls }), n, `${n} requests of class ${cls}`)
  t.equal(value(s, 'claylb_requests_total'), 41, 'every request counted once')
  t.equal(value(s, 'claylb_requests_total', { upstream: 'a' }) + value(s, 'claylb_requests_total', { upstream: 'b' }), 41)
  t.equal(value(s, 'claylb_requests_total', { upstream: 'a' }), a.count, 'per upstream: what the backend itself counted')
  t.equal(family(s, 'claylb_request_duration_seconds').type, 'HISTOGRAM')
  t.equal(value(s, 'claylb_request_duration_seconds_count'), 41, 'histogram count = requests')
  t.equal(value(s, 'claylb_request_duration_seconds_bucket', { le: '+Inf' }), 41, '+Inf bucket = count')
  t.equal(value(s, 'claylb_request_duration_seconds_bucket', { upstream: 'a', le: '+Inf' }), a.count)
  t.ok(value(s, 'claylb_request_duration_seconds_bucket', { le: '0.001' }) <= value(s, 'claylb_request_duration_seconds_bucket', { le: '60' }), 'buckets cumulative')
  t.ok(value(s, 'claylb_request_duration_seconds_sum') > 0)
  t.equal(value(s, 'claylb_upstream_tries_total', { outcome: 'ok' }), 37, 'tries: 2xx and 4xx are ok')
  t.equal(value(s, 'claylb_upstream_tries_total', { outcome: 'http-5xx' }), 4)
  t.equal(value(s, 'claylb_upstream_up'), 2, 'both upstreams up')
  t.equal(value(s, 'claylb_upstream_inflight_requests'), 0)
  t.equal(value(s, 'claylb_panic_mode'), 0)
  t.ok(family(s, 'claylb_process_cpu_user_seconds_total'), 'default process metrics, prefixed')
  t.ok(family(s, 'claylb_idempotency_requests_total') && family(s, 'claylb_redis_command_duration_seconds'), 'state-tier metrics declared')

  // a request no upstream could take is counted under upstream="none"
  await req(`${lb.admin}/upstreams/a/drain`, { method: 'POST' })
  await req(`${lb.admin}/upstreams/b/drain`, { method: 'POST' })
  const r = await req(`${lb.url}/nowhere`)
  t.equal(r.status, 503)
  const s2 = await scrape(lb.admin)
  t.equal(value(s2, 'claylb_requests_total', { upstream: 'none', code_class: '5xx' }), 1)
  t.equal(value(s2, 'claylb_requests_total'), 42)
})

t.test('label cardinality stays bounded after 1,000 requests to random paths', async (t) => {
  const a = await startBackend(statusHandler)
  const lb = await startClaylb({ config: { upstreams: [{ url: a.url }], log: { access: false } } })
  t.teardown(async () => { await lb.stop(); await a.close() })
  await req(`${lb.url}/warm`)
  await req(`${lb.url}/status/404`)
  const before = await scrape(lb.admin)
  const paths: string[] = []
  let i = 0
  const worker = async (): Promise<void> => {
    while (i < 1000) {
      const p = `/r/${++i}/${Math.random().toString(36).slice(2)}?q=${i}`
      paths.push(p)
      await req(`${lb.url}${p}`)
    }
  }
  await Promise.all(Array.from({ length: 16 }, worker))
  const after = await scrape(lb.admin)
  t.equal(seriesCount(after, 'claylb_requests_') + seriesCount(after, 'claylb_request_duration'), seriesCount(before, 'claylb_requests_') + seriesCount(before, 'claylb_request_duration'), 'no new request series')
  t.equal(seriesCount(after, 'claylb_upstream_'), seriesCount(before, 'claylb_upstream_'), 'no new upstream series')
  t.equal(value(after, 'claylb_requests_total'), 1002)
  t.notOk(paths.some((p) => after.text.includes(p.split('?')[0]!)), 'no path appears in any label')
  t.ok(seriesCount(after) < 400, `total series bounded (${seriesCount(after)})`)
})
