/**
 * routes: every match kind against real backends through the real CLI, first match wins, the
 * default pool and the 404 without one, stripPrefix, and header set/remove in both directions.
 */
import t from 'tap'
import { startBackend, type Backend, type Handler } from '../helpers/backend.js'
import { join } from 'node:path'
import { ROOT, startClaylb, type Claylb } from '../helpers/claylb.js'
import { req } from '../helpers/http.js'

/** answers its name, and echoes x-upstream-secret back as a response header the route removes */
const named = (name: string): Handler => (q, s) => {
  q.resume()
  q.on('end', () => {
    s.setHeader('x-backend', name)
    s.setHeader('x-upstream-secret', 'hidden')
    s.setHeader('server', 'backend-server')
    s.end(name)
  })
}

async function backends (...names: string[]): Promise<Record<string, Backend>> {
  const out: Record<string, Backend> = {}
  for (const n of names) out[n] = await startBackend(named(n))
  return out
}

const pool = (b: Backend): { upstreams: Array<{ url: string }> } => ({ upstreams: [{ url: b.url }] })

t.test('match kinds, first match wins, default pool, stripPrefix, header rewrites both ways', async (t) => {
  const b = await backends('main', 'api', 'static', 'wild', 'exact', 'post', 'canary', 'first', 'second')
  const lb: Claylb = await startClaylb({
    config: {
      upstreams: [{ url: b['main']!.url }],
      pools: {
        api: pool(b['api']!), static: pool(b['static']!), wild: pool(b['wild']!), exact: pool(b['exact']!),
        post: pool(b['post']!), canary: pool(b['canary']!), first: pool(b['first']!), second: pool(b['second']!),
      },
      routes: [
        { match: { headers: { 'x-canary': 'yes' } }, pool: 'canary' },
        { match: { host: 'shop.example.test' }, pool: 'exact' },
        { match: { host: '*.apps.test' }, pool: 'wild' },
        { match: { pathPrefix: '/api/', methods: ['POST'] }, pool: 'post' },
        {
          match: { pathPrefix: '/api/' },
          pool: 'api',
          stripPrefix: true,
          requestHeaders: { set: { 'x-route': 'api', 'X-Replaced': 'new' }, remove: ['x-drop-me'] },
          responseHeaders: { set: { 'x-served-by': 'claylb-api', server: 'claylb' }, remove: ['x-upstream-secret'] },
        },
        { match: { pathPrefix: '/static' }, pool: 'static' },
        { match: { pathPrefix: '/both' }, pool: 'first' },
        { match: { pathPrefix: '/both' }, pool: 'second' },
        { match: { headers: { 'x-present': true }, pathPrefix: '/has' }, pool: 'canary' },
      ],
      healthCheck: { enabled: false },
      log: { access: false },
    },
  })
  t.teardown(async () => { await lb.stop(); for (const x of Object.values(b)) await x.close() })
  const get = (path: string, headers: Record<string, string> = {}, method = 'GET') => req(`${lb.url}${path}`, { method, headers, ...(method === 'POST' ? { body: 'x' } : {}) })

  // host: exact, case-insensitive, port ignored
  t.equal((await get('/', { host: 'shop.example.test' })).body, 'exact', 'exact host')
  t.equal((await get('/', { host: 'SHOP.Example.TEST:8443' })).body, 'exact', 'exact host: case and port ignored')
  t.equal((await get('/', { host: 'x.shop.example.test' })).body, 'main', 'exact host does not take subdomains')
  // host: wildcard
  t.equal((await get('/', { host: 'a.apps.test' })).body, 'wild', 'wildcard: one label')
  t.equal((await get('/', { host: 'b.c.APPS.test:80' })).body, 'wild', 'wildcard: deeper, case and port ignored')
  t.equal((await get('/', { host: 'apps.test' })).body, 'main', 'wildcard does not take the bare domain')
  t.equal((await get('/', { host: 'xapps.test' })).body, 'main', 'wildcard needs the dot')
  // method + path prefix, in order: POST /api/ goes to post, other methods to api
  t.equal((await get('/api/x', {}, 'POST')).body, 'post', 'methods + pathPrefix')
  t.equal((await get('/api/x')).body, 'api', 'pathPrefix (GET is not in the POST route)')
  t.equal((await get('/apix')).body, 'main', 'a prefix is matched as written (/api/ does not take /apix)')
  t.equal((await get('/static/app.js')).body, 'static', 'pathPrefix')
  // header match, exact value and presence
  t.equal((await get('/static/app.js', { 'x-canary': 'yes' })).body, 'canary', 'header value: the first route wins over a later path match')
  t.equal((await get('/static/app.js', { 'X-Canary': 'no' })).body, 'static', 'header value must match exactly')
  t.equal((await get('/has', { 'X-Present': '' })).body, 'canary', 'header presence')
  t.equal((await get('/has')).body, 'main', 'header absent: no match')
  // first match wins between two identical matches
  t.equal((await get('/both')).body, 'first', 'first match wins')
  t.equal(b['second']!.count, 0, 'the second identical route never served')
  // no route: the default pool
  t.equal((await get('/elsewhere')).body, 'main', 'no match: the default pool')

  // stripPrefix and request header rewrite
  const r = await get('/api/users?id=1', { 'x-drop-me': '1', 'x-replaced': 'old', 'x-kept': 'k' })
  const seen = b['api']!.seen.at(-1)!
  t.equal(seen.url, '/users?id=1', 'stripPrefix: the upstream sees the path without /api')
  t.equal(seen.headers['x-route'], 'api', 'request header set')
  t.equal(seen.headers['x-replaced'], 'new', 'request header set replaces the client\'s')
  t.equal(seen.rawHeaders.filter((h) => h.toLowerCase() === 'x-replaced').length, 1, 'and is not doubled')
  t.equal(seen.headers['x-drop-me'], undefined, 'request header removed')
  t.equal(seen.headers['x-kept'], 'k', 'other headers pass')
  t.equal(seen.headers['x-forwarded-for'], '127.0.0.1', 'the proxy\'s own headers are still added')
  await get('/api/', {})
  t.equal(b['api']!.seen.at(-1)!.url, '/', 'stripPrefix: an empty rest becomes /')
  // response header rewrite
  t.equal(r.headers['x-served-by'], 'claylb-api', 'response header set')
  t.equal(r.headers['server'], 'claylb', 'response header set replaces the upstream\'s')
  t.equal(r.headers['x-upstream-secret'], undefined, 'response header removed')
  t.equal(r.headers['x-backend'], 'api', 'other response headers pass')
  // a route without rewrites leaves both directions alone
  const plain = await get('/static/x', { 'x-drop-me': '1' })
  t.equal(plain.headers['x-upstream-secret'], 'hidden')
  t.equal(b['static']!.seen.at(-1)!.headers['x-drop-me'], '1')
})

t.test('no default pool: a request no route matches is a 404 problem', async (t) => {
  const b = await backends('api')
  const lb = await startClaylb({
    config: { pools: { api: pool(b['api']!) }, routes: [{ match: { pathPrefix: '/api' }, pool: 'api' }], healthCheck: { enabled: false }, log: { access: false } },
  })
  t.teardown(async () => { await lb.stop(); await b['api']!.close() })
  t.equal((await req(`${lb.url}/api/1`)).body, 'api')
  const r = await req(`${lb.url}/other`)
  t.equal(r.status, 404)
  t.equal(r.headers['content-type'], 'application/problem+json')
  t.match(JSON.parse(r.body), { type: 'urn:claylb:problem:no-route', status: 404 })
  t.equal(b['api']!.count, 1, 'nothing else reached the pool')
})

t.test('per-pool retry and health: each pool uses its own settings', async (t) => {
  // pool "flaky": one backend answers 503 once per request pair, retried on 503 by the pool's retry;
  // the default pool does not retry 503
  let n = 0
  const flaky = await startBackend((q, s) => { q.resume(); s.statusCode = n++ % 2 === 0 ? 503 : 200; s.end(String(s.statusCode)) })
  const flaky2 = await startBackend((q, s) => { q.resume(); s.statusCode = 200; s.end('200') })
  let m = 0
  const plain = await startBackend((q, s) => { q.resume(); s.statusCode = m++ % 2 === 0 ? 503 : 200; s.end(String(s.statusCode)) })
  // pool "checked": an HTTP check on /ready, which one backend fails
  const good = await startBackend((q, s) => { q.resume(); s.end('good') })
  const bad = await startBackend((q, s) => { q.resume(); s.statusCode = q.url === '/ready' ? 500 : 200; s.end('bad') })
  const lb = await startClaylb({
    config: {
      upstreams: [{ url: plain.url }],
      pools: {
        flaky: { upstreams: [{ url: flaky.url }, { url: flaky2.url }], retry: { attempts: 2, onStatus: [503], backoffBaseMs: 0, backoffMaxMs: 0 }, balancer: { policy: 'round-robin' } },
        checked: { upstreams: [{ url: good.url, id: 'good' }, { url: bad.url, id: 'bad' }], healthCheck: { path: '/ready', intervalMs: 100, unhealthyThreshold: 1 } },
      },
      routes: [{ match: { pathPrefix: '/flaky' }, pool: 'flaky' }, { match: { pathPrefix: '/checked' }, pool: 'checked' }],
      healthCheck: { intervalMs: 100 },
      outlier: { enabled: false },
      panic: { thresholdPercent: 0 },
      log: { access: false },
    },
  })
  t.teardown(async () => { await lb.stop(); for (const x of [flaky, flaky2, plain, good, bad]) await x.close() })
  for (let i = 0; i < 6; i++) t.equal((await req(`${lb.url}/flaky`)).status, 200, 'the flaky pool retries 503 on its other host')
  const plainStatuses = []
  for (let i = 0; i < 4; i++) plainStatuses.push((await req(`${lb.url}/`)).status)
  t.ok(plainStatuses.includes(503), `the default pool passes 503 on (its retry.onStatus is empty): ${plainStatuses}`)
  await lb.waitForLog((l) => l['msg'] === 'upstream unhealthy' && l['upstream'] === 'bad', 10_000)
  const before = bad.count
  for (let i = 0; i < 6; i++) t.equal((await req(`${lb.url}/checked`)).body, 'good', 'the pool\'s own HTTP check took bad out')
  t.equal(bad.count, before)
  t.equal(plain.checks, 0, 'the default pool (no healthCheck.path) checks by TCP connect: no HTTP check reached it')
})

t.test('workers are a pool: with upstreams too, pool: workers routes to them, the rest to the upstreams', async (t) => {
  const b = await backends('static')
  const lb = await startClaylb({
    config: {
      upstreams: [{ url: b['static']!.url }],
      workers: { count: 1, app: join(ROOT, 'test/workers/fixtures/config-app.mjs') },
      routes: [{ match: { pathPrefix: '/app/' }, pool: 'workers' }],
      log: { access: false },
    },
  })
  t.teardown(async () => { await lb.stop(); await b['static']!.close() })
  const app = await req(`${lb.url}/app/x`)
  t.equal(app.status, 200)
  t.match(app.headers['x-worker-id'], /^w\d+$/, 'a worker answered /app/')
  const other = await req(`${lb.url}/other`)
  t.equal(other.body, 'static', 'the default pool is the upstreams')
  t.equal(other.headers['x-worker-id'], undefined)
})

t.test('per-pool timeouts: a pool\'s requestMs cuts its own requests only', async (t) => {
  const hang = await startBackend((q) => { q.resume() }) // never answers
  const b = await backends('main')
  const lb = await startClaylb({
    config: {
      upstreams: [{ url: b['main']!.url }],
      pools: { short: { upstreams: [{ url: hang.url }], timeouts: { requestMs: 300 } } },
      routes: [{ match: { pathPrefix: '/short' }, pool: 'short' }],
      healthCheck: { enabled: false },
      outlier: { enabled: false },
      log: { access: false },
    },
  })
  t.teardown(async () => { await lb.stop(); await hang.close(); await b['main']!.close() })
  const r = await req(`${lb.url}/short`)
  t.equal(r.status, 504)
  t.match(JSON.parse(r.body), { type: 'urn:claylb:problem:upstream-timeout', detail: /300 ms/ })
  t.equal((await req(`${lb.url}/`)).body, 'main', 'the default pool is not affected')
})
