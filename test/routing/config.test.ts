/**
 * pools / routes / trustedProxies in the config: inheritance, and every error naming its path; and
 * which changes a reload can apply (reload-plan), unit by unit.
 */
import t from 'tap'
import { buildConfig } from '../../src/shared/config/load.js'
import { notLiveChanges, changedKeys } from '../../src/control/pools/reload-plan.js'
import { configProblems as problems } from '../helpers/config.js'
const up = { upstreams: [{ url: 'http://127.0.0.1:1' }] }

t.test('a pool inherits every section it leaves out, and merges the ones it gives', async (t) => {
  const c = buildConfig({ ...up, retry: { attempts: 3, budgetPercent: 50 }, timeouts: { connectMs: 500 }, pools: { api: { ...up, retry: { attempts: 5 }, timeouts: { requestMs: 1000 }, healthCheck: { path: '/ready' } } } })
  const api = c.pools['api']!
  t.same([api.retry.attempts, api.retry.budgetPercent], [5, 50], 'retry: own attempts, inherited budget')
  t.same([api.timeouts.requestMs, api.timeouts.connectMs, api.timeouts.idleMs], [1000, 500, 60_000])
  t.equal(api.healthCheck.path, '/ready')
  t.equal(api.healthCheck.intervalMs, 2000)
  t.equal(api.balancer.policy, 'round-robin')
  t.equal(buildConfig({ pools: { api: up } }).workers.count, 0, 'pools alone spawn no workers')
  t.equal(buildConfig({}).workers.count, 4)
})

t.test('errors name their path', async (t) => {
  t.same(problems({ ...up, pools: { static: up }, routes: [{ pool: 'static' }, { pool: 'static' }, { pool: 'api' }] }),
    ['routes[2].pool: unknown pool "api" (pools: "static", "default")'])
  t.same(problems({ pools: { default: up, workers: up } }), [
    'pools.default: "default" is reserved (the top-level upstreams)',
    'pools.workers: "workers" is reserved (the spawned workers)',
  ])
  t.same(problems({ ...up, routes: [{ pool: 'workers' }] }), ['routes[0].pool: unknown pool "workers" (pools: "default")'], 'no workers: no workers pool')
  t.same(problems({ workers: { count: 0 }, routes: [{ pool: 'default' }] }), ['routes[0].pool: unknown pool "default" (no pool is configured)'])
  t.same(problems({ ...up, routes: [{ pool: 'default', stripPrefix: true }] }), ['routes[0].stripPrefix: needs match.pathPrefix'])
  t.same(problems({ ...up, routes: [{ pool: 'default', requestHeaders: { set: { 'Content-Length': '1' } }, responseHeaders: { remove: ['transfer-encoding'] } }] }), [
    'routes[0].requestHeaders: Content-Length frames the message; claylb writes it itself',
    'routes[0].responseHeaders: transfer-encoding frames the message; claylb writes it itself',
  ])
  t.same(problems({ ...up, routes: [{ pool: 'default', match: { host: 'a.*.com' } }] }), ['routes.0.match.host: must be a host name, or *. and a domain'])
  t.same(problems({ ...up, routes: [{ pool: 'default', match: { pathPrefix: 'api' } }] }), ['routes.0.match.pathPrefix: must start with /'])
  t.same(problems({ ...up, routes: [{ pool: 'default', match: { path: '/x' } }] }), ['routes.0.match.path: unknown key'])
  t.same(problems({ ...up, routes: [{ pool: 'default', requestHeaders: { set: { 'x-a': 'bad\r\nx-b: 1' } } }] }), ['routes.0.requestHeaders.set.x-a: must not contain control characters'])
  t.same(problems({ ...up, trustedProxies: ['10.0.0.0/8', '10.0.0.0/33', 'fd00::/129', 'nope', '::ffff:10.0.0.0/104'] }), [
    'trustedProxies[1]: must be a CIDR (10.0.0.0/8, fd00::/8) or an IP address, got "10.0.0.0/33"',
    'trustedProxies[2]: must be a CIDR (10.0.0.0/8, fd00::/8) or an IP address, got "fd00::/129"',
    'trustedProxies[3]: must be a CIDR (10.0.0.0/8, fd00::/8) or an IP address, got "nope"',
  ])
  t.same(problems({ pools: { api: { upstreams: [] } } }), ['pools.api.upstreams: must list at least one upstream'])
  t.same(problems({ pools: { api: { ...up, timeouts: { idleMs: 5 } } } }), ['pools.api.timeouts.idleMs: unknown key'])
})

t.test('reload plan: what applies live and what is refused, by key', async (t) => {
  const a = buildConfig({ ...up })
  const live = buildConfig({ upstreams: [{ url: 'http://127.0.0.1:2', weight: 3 }], pools: { x: up }, routes: [{ pool: 'x' }], trustedProxies: ['10.0.0.0/8'], retry: { attempts: 4 }, timeouts: { requestMs: 5 }, healthCheck: { path: '/h' }, limits: { maxBodyBytes: 10 } })
  t.same(notLiveChanges(a, live), [], 'routing, pools, upstreams, weights, retry, timeouts, health, limits: live')
  const dead = buildConfig({ ...up, listen: { host: '127.0.0.2' }, admin: { port: 1 }, redis: { url: 'redis://h:1' }, log: { level: 'warn' }, idempotency: { ttlSeconds: 5 } })
  t.same(notLiveChanges(a, dead).sort(), ['admin.port', 'idempotency.ttlSeconds', 'listen.host', 'log.level', 'redis.url'])
  const keyed = buildConfig({ ...up, idempotency: { routes: [{ match: 'POST /orders' }] } })
  t.same(notLiveChanges(a, keyed), ['idempotency.routes'], 'idempotency.routes from none to some: the gate is made at start')
  const keyed2 = buildConfig({ ...up, idempotency: { routes: [{ match: 'POST /payments' }] } })
  t.same(notLiveChanges(keyed, keyed2), [], 'idempotency.routes while some stay: live')
  // listen.tls (certificates) is live: the TLS listener re-reads them
  t.same(changedKeys({ listen: { tls: { cert: 'a' }, port: 1 } }, { listen: { tls: { cert: 'b' }, port: 1 } }), ['listen.tls.cert'])
  t.same(notLiveChanges({ ...a, listen: { ...a.listen, tls: { cert: 'a' } } } as never, { ...a, listen: { ...a.listen, tls: { cert: 'b' } } } as never), [])
})
