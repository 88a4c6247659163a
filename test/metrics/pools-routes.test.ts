/**
 * Issue 28: the same upstream listed in two pools is two hosts (metrics labelled by pool, the admin
 * drain acting in every pool it belongs to, or in one with ?pool=), and every route has its own
 * request counters and latency histogram. Checked against what was sent: a random plan of requests
 * (fast-check) whose model is counted on the test's side, with one and with two proxy processes.
 */
import t, { type Test } from 'tap'
import fc from 'fast-check'
import { startBackend, type Handler } from '../helpers/backend.js'
import { startClaylb } from '../helpers/claylb.js'
import { req } from '../helpers/http.js'
import { scrape, value } from '../helpers/metrics.js'
import { configProblems as problems } from '../helpers/config.js'
import { spawnSync } from 'node:child_process'

/**
 * promtool's own parser and linter over the scrape. Only prom-client's default nodejs_* gauges may
 * draw lint remarks (they end in _total: prom-client's names, not ours).
 */
function promtool (t: Test, text: string): void {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' })
  if (r.error !== undefined) throw new Error('promtool is needed: apt-get install prometheus (Debian) brings /usr/bin/promtool')
  const remarks = `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('claylb_nodejs_'))
  t.same(remarks, [], 'promtool check metrics: no error, no lint remark on claylb\'s own metrics')
  t.ok(r.status === 0 || r.status === 3, `promtool parsed it (exit ${r.status})`)
}

const named = (name: string): Handler => (q, s) => {
  q.resume()
  const m = /\/status\/(\d{3})/.exec(q.url ?? '')
  s.statusCode = m ? Number(m[1]) : 200
  s.end(name)
}

interface Step { route: 'api' | 'web', status: 200 | 404 | 500 }
const plan = fc.sample(fc.array(fc.record({ route: fc.constantFrom('api' as const, 'web' as const), status: fc.constantFrom(200 as const, 404 as const, 500 as const) }), { minLength: 20, maxLength: 40 }), { numRuns: 1, seed: Number(process.env['PROPERTY_SEED'] ?? 28) })[0]!

for (const processes of [1, 2]) {
  t.test(`an upstream in two pools, with ${processes} proxy process(es): per pool and per route series, drain in every pool`, async (t) => {
    const a = await startBackend(named('a'))
    const b = await startBackend(named('b'))
    const lb = await startClaylb({
      config: {
        listen: { processes },
        log: { access: false },
        // no retries on 5xx: one try per request, so tries equal requests
        retry: { attempts: 1 },
        outlier: { enabled: false },
        pools: { api: { upstreams: [{ url: a.url, id: 'a' }, { url: b.url, id: 'b' }] }, web: { upstreams: [{ url: a.url, id: 'a' }] } },
        // a redirect route sends nowhere: its counters are under pool=""
        routes: [{ name: 'api', match: { pathPrefix: '/api' }, pool: 'api' }, { match: { pathPrefix: '/web' }, pool: 'web' }, { name: 'old', match: { pathPrefix: '/old' }, redirect: { to: '/api{path}', status: 301 } }],
      },
    })
    t.teardown(async () => { await lb.stop(); await a.close(); await b.close() })

    // the model: what each route, pool and upstream answered, counted here
    const byRoute: Record<string, Record<string, number>> = { api: {}, 1: {} }
    const byHost: Record<string, number> = {}
    for (const s of plan as Step[]) {
      const r = await req(`${lb.url}/${s.route}/status/${s.status}`)
      t.equal(r.status, s.status)
      const label = s.route === 'api' ? 'api' : '1'
      const cls = `${String(s.status)[0]}xx`
      byRoute[label]![cls] = (byRoute[label]![cls] ?? 0) + 1
      const key = `${s.route}/${r.body}`
      byHost[key] = (byHost[key] ?? 0) + 1
    }
    const redirects = plan.length % 5 + 1
    for (let i = 0; i < redirects; i++) t.equal((await req(`${lb.url}/old/${i}`)).status, 301)

    const m = await scrape(lb.admin)
    promtool(t, m.text)
    for (const pool of ['api', 'web']) t.equal(value(m, 'claylb_upstream_up', { pool, upstream: 'a' }), 1, `claylb_upstream_up{pool="${pool}",upstream="a"} is 1, not 2`)
    t.equal(value(m, 'claylb_upstream_up', { pool: 'api', upstream: 'b' }), 1)
    t.equal(value(m, 'claylb_route_requests_total', { route: 'old', pool: '', code_class: '3xx' }), redirects, 'the redirect route counts under pool=""')
    t.equal(value(m, 'claylb_route_request_duration_seconds_count', { route: 'old', pool: '' }), redirects)
    for (const [route, classes] of Object.entries(byRoute)) {
      const pool = route === 'api' ? 'api' : 'web'
      for (const cls of ['2xx', '4xx', '5xx']) t.equal(value(m, 'claylb_route_requests_total', { route, pool, code_class: cls }), classes[cls] ?? 0, `route ${route} ${cls}`)
      const n = Object.values(classes).reduce((x, y) => x + y, 0)
      t.equal(value(m, 'claylb_route_request_duration_seconds_count', { route, pool }), n, `route ${route}: histogram count`)
      t.equal(value(m, 'claylb_route_request_duration_seconds_bucket', { route, pool, le: '+Inf' }), n)
    }
    for (const pool of ['api', 'web']) {
      for (const up of ['a', 'b']) {
        const want = byHost[`${pool}/${up}`] ?? 0
        t.equal(value(m, 'claylb_requests_total', { pool, upstream: up }), want, `requests_total{pool=${pool},upstream=${up}}`)
        t.equal(value(m, 'claylb_request_duration_seconds_count', { pool, upstream: up }), want)
        t.equal(value(m, 'claylb_upstream_tries_total', { pool, upstream: up }), want)
      }
    }

    // drain a: in both pools (web has nothing else: 503; api: b only)
    const d = await req(`${lb.admin}/upstreams/a/drain`, { method: 'POST' })
    t.equal(d.status, 200)
    t.same(JSON.parse(d.body).pools, ['api', 'web'], 'drained in every pool that lists it')
    for (let i = 0; i < 6; i++) t.equal((await req(`${lb.url}/api/x`)).body, 'b', 'api: b only')
    t.equal((await req(`${lb.url}/web/x`)).status, 503, 'web: a drained there too')
    const m2 = await scrape(lb.admin)
    for (const pool of ['api', 'web']) t.equal(value(m2, 'claylb_upstream_up', { pool, upstream: 'a' }), 0)
    t.equal((await req(`${lb.admin}/upstreams/a/ready`, { method: 'POST' })).status, 200)

    // ?pool= picks one
    const one = await req(`${lb.admin}/upstreams/a/drain?pool=web`, { method: 'POST' })
    t.same(JSON.parse(one.body).pools, ['web'])
    t.equal((await req(`${lb.url}/web/x`)).status, 503, 'web: a drained')
    const api = new Set<string>()
    for (let i = 0; i < 6; i++) api.add((await req(`${lb.url}/api/x`)).body)
    t.same([...api].sort(), ['a', 'b'], 'api: a still serves there')
    t.equal((await req(`${lb.admin}/upstreams/a/drain?pool=nope`, { method: 'POST' })).status, 404, 'unknown pool: 404')
  })
}

t.test('ids unique within a pool; route names unique and not reserved', async (t) => {
  t.same(problems({ upstreams: [{ url: 'http://127.0.0.1:1' }, { url: 'http://127.0.0.1:1' }] }), ['upstreams[1]: id "127.0.0.1:1" appears twice in this pool'])
  t.same(problems({ upstreams: [{ url: 'http://127.0.0.1:1', id: 'x' }, { url: 'http://127.0.0.1:2', id: 'x' }] }), ['upstreams[1]: id "x" appears twice in this pool'])
  t.same(problems({ pools: { p: { upstreams: [{ url: 'http://127.0.0.1:1' }] }, q: { upstreams: [{ url: 'http://127.0.0.1:1' }] } } }), [], 'the same upstream in two pools is fine')
  const up = { upstreams: [{ url: 'http://127.0.0.1:1' }] }
  t.same(problems({ ...up, routes: [{ name: 'x', pool: 'default' }, { name: 'x', pool: 'default' }] }), ['routes[1].name: "x" is also routes[0]\'s name'])
  t.same(problems({ ...up, routes: [{ name: 'default', pool: 'default' }, { name: '3', pool: 'default' }] }), [
    'routes[0].name: "default" is reserved (the default route\'s label, or another route\'s index)',
    'routes[1].name: "3" is reserved (the default route\'s label, or another route\'s index)',
  ])
  t.same(problems({ ...up, routes: [{ name: 'a b', pool: 'default' }] }), ['routes.0.name: must be a name of letters, digits, _ . -'])
})

t.test('two proxy processes: a failing try of an upstream shared by two pools is judged in the pool that sent it', async (t) => {
  const a = await startBackend(named('a'))
  const b = await startBackend(named('b'))
  t.teardown(async () => { await a.close(); await b.close() })
  const lb = await startClaylb({
    config: {
      listen: { processes: 2 },
      log: { access: false },
      retry: { attempts: 1 },
      healthCheck: { enabled: false },
      outlier: { consecutiveFailures: 3, maxEjectionPercent: 100 },
      pools: { api: { upstreams: [{ url: a.url, id: 'a' }, { url: b.url, id: 'b' }] }, web: { upstreams: [{ url: a.url, id: 'a' }, { url: b.url, id: 'b' }] } },
      routes: [{ match: { pathPrefix: '/api' }, pool: 'api' }, { match: { pathPrefix: '/web' }, pool: 'web' }],
    },
  })
  t.teardown(() => lb.stop())
  // 5xx through web only, until its detector ejects a host (each try's outcome travels to the primary in batches)
  let ejected: Array<{ pool: string, id: string }> = []
  for (let i = 0; i < 2000 && ejected.length === 0; i++) {
    await req(`${lb.url}/web/status/500`)
    const st = JSON.parse((await req(`${lb.admin}/status`)).body) as { upstreams: Array<{ pool: string, id: string, state: string }> }
    ejected = st.upstreams.filter((u) => u.state === 'ejected')
  }
  t.ok(ejected.length > 0, 'web\'s detector ejected a host')
  t.same([...new Set(ejected.map((u) => u.pool))], ['web'], 'only in web: api sent no failing try')
  const m = await scrape(lb.admin)
  t.equal(value(m, 'claylb_upstream_ejections_total', { pool: 'api' }), 0, 'no ejection counted in api')
  t.ok(value(m, 'claylb_upstream_ejections_total', { pool: 'web' }) >= 1)
})
