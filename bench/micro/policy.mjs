// Rate limits on the request path (dist/data/policy): Policy.admit as exchange.activate calls it.
// 10 limits of which a plain GET matches none (every match tested), or the last one (a Map lookup of
// its key, a token taken from the process's bucket); a local DirectStore, so no I/O. A config without
// limits has no Policy at all (one null check), not measured here.
import { bench, BROWSER_HEADERS, do_not_optimize, reportAllocations, requireDist, run, summary } from './harness.mjs'

const { buildConfig } = await requireDist('shared/config/load.js')
const { buildPolicy, PolicyTally } = await requireDist('data/policy/policy.js')

const matches = [
  { host: 'shop.example.com' }, { host: '*.internal.example' }, { pathPrefix: '/static/' },
  { pathPrefix: '/api/v2/', methods: ['POST', 'PUT'] }, { headers: { 'x-canary': 'yes' } },
  { host: '*.cdn.example', pathPrefix: '/img/' }, { pathPrefix: '/admin', headers: { authorization: true } },
  { methods: ['DELETE'] }, { host: 'api.example.org', pathPrefix: '/v1/' },
]
const limits = (last) => buildConfig({
  upstreams: [{ url: 'http://127.0.0.1:19999' }],
  rateLimits: [
    ...matches.map((match, i) => ({ name: `l${i}`, match, key: 'ip', rate: '100/s', scope: 'local' })),
    { name: 'last', match: last, key: 'ip', rate: '999999999/s', burst: 100000000, scope: 'local' },
  ],
})
const sources = { global: () => { throw new Error('no global limit here') }, local: null }
const noneMatch = buildPolicy(limits({ pathPrefix: '/nothing/' }), new PolicyTally(), sources, null)
const oneMatches = buildPolicy(limits({}), new PolicyTally(), sources, null)
const ex = {
  method: 'GET', path: '/api/v1/orders?page=2', clientPath: '', hostHeader: 'api.example.com', rawHeaders: BROWSER_HEADERS,
  conn: { remoteAddress: '10.1.2.3', trusted: false }, limitIndex: 0,
  fail () { throw new Error('refused') }, limitDecided () {},
}
if (!noneMatch.admit(ex, 0) || !oneMatches.admit(ex, 0)) throw new Error('policy bench: refused')

summary(() => {
  bench('10 limits, none matches (every match tested)', () => do_not_optimize(noneMatch.admit(ex, 0)))
  bench('10 limits, the last matches (key ip, local bucket)', () => do_not_optimize(oneMatches.admit(ex, 0)))
})
await run()
await reportAllocations([
  ['10 limits, none matches', () => noneMatch.admit(ex, 0)],
  ['10 limits, the last matches', () => oneMatches.admit(ex, 0)],
])
for (const p of [noneMatch, oneMatches]) p.retire(null)
