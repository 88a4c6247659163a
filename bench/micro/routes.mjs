// Route matching: a request against a 10-route table (dist/routing), compiled at config load, as the
// raw engine does once per request head. Worst case: the request matches none of the ten and falls
// to the default pool, so every route's host, path, method and header tests run.
import { bench, BROWSER_HEADERS, do_not_optimize, reportAllocations, requireDist, run, summary } from './harness.mjs'

const { buildConfig } = await requireDist('config/load.js')
const { Cluster } = await requireDist('upstream/cluster.js')
const { buildRoutingState } = await requireDist('routing/routing-state.js')
const { newRetryTally } = await requireDist('proxy/retry-policy.js')

const pools = {}
for (let i = 0; i < 10; i++) pools[`p${i}`] = { upstreams: [{ url: `http://127.0.0.1:${20000 + i}` }] }
const config = buildConfig({
  upstreams: [{ url: 'http://127.0.0.1:19999' }],
  pools,
  routes: [
    { match: { host: 'shop.example.com' }, pool: 'p0' },
    { match: { host: '*.internal.example' }, pool: 'p1' },
    { match: { pathPrefix: '/static/' }, pool: 'p2', stripPrefix: true },
    { match: { pathPrefix: '/api/v2/', methods: ['POST', 'PUT'] }, pool: 'p3' },
    { match: { headers: { 'x-canary': 'yes' } }, pool: 'p4' },
    { match: { host: '*.cdn.example', pathPrefix: '/img/' }, pool: 'p5' },
    { match: { pathPrefix: '/admin', headers: { authorization: true } }, pool: 'p6' },
    { match: { methods: ['DELETE'] }, pool: 'p7' },
    { match: { host: 'api.example.org', pathPrefix: '/v1/' }, pool: 'p8' },
    { match: { pathPrefix: '/ws' }, pool: 'p9' },
  ],
})
const clusters = new Map()
const state = buildRoutingState(config, (n) => { if (!clusters.has(n)) clusters.set(n, new Cluster()); return clusters.get(n) }, newRetryTally())
const raw = BROWSER_HEADERS
const host = 'api.example.com'
const miss = () => state.match('GET', '/api/v1/orders?page=2', host, raw)
const firstHit = () => state.match('GET', '/x', 'SHOP.example.com:443', raw)
const wildHit = () => state.match('GET', '/img/a.png', 'eu.cdn.example', raw)
const one = buildRoutingState(buildConfig({ upstreams: [{ url: 'http://127.0.0.1:19999' }] }), (n) => clusters.get(n) ?? new Cluster(), newRetryTally())
const none = () => one.match('GET', '/api/v1/orders?page=2', host, raw)
if (miss().index !== -1 || firstHit().index !== 0 || wildHit().index !== 5 || none().index !== -1) throw new Error('routes bench: unexpected match')

summary(() => {
  bench('10 routes, none matches (every test runs)', () => do_not_optimize(miss()))
  bench('10 routes, the first matches (host, case + port)', () => do_not_optimize(firstHit()))
  bench('10 routes, the sixth matches (wildcard + path)', () => do_not_optimize(wildHit()))
  bench('no routes (the default pool)', () => do_not_optimize(none()))
})
await run()
await reportAllocations([
  ['10 routes, none matches', miss],
  ['10 routes, first matches', firstHit],
  ['10 routes, sixth matches', wildHit],
  ['no routes', none],
])
for (const p of state.pools.values()) p.close()
for (const p of one.pools.values()) p.close()
