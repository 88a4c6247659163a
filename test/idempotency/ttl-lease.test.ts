/**
 * Issue 24, case 5: the record must outlive its request. Renewals move the record's retention with
 * the lease (an owner stopped mid-request leaves an unknown outcome for ttlSeconds past its lease,
 * never a free key), and the config refuses a ttlSeconds shorter than the longest request a keyed
 * route allows. Two real claylb instances on one real redis-server, real backends counting executions.
 */
import t from 'tap'
import { buildConfig } from '../../src/shared/config/load.js'
import { startClaylb } from '../helpers/claylb.js'
import { sleep } from '../helpers/http.js'
import { startOrdersApp } from '../helpers/orders-app.js'
import { startRedis } from '../helpers/redis.js'
import { newKey, send } from './http-conformance.js'
import { executions } from './stack.js'

t.test('config: ttlSeconds shorter than a keyed route\'s longest request is refused, naming the route and the pool', async (t) => {
  const up = { upstreams: [{ url: 'http://127.0.0.1:1' }] }
  const keyed = { routes: [{ match: 'POST /orders' }] }
  t.throws(() => buildConfig({ ...up, idempotency: { ...keyed, ttlSeconds: 30 } }),
    /idempotency\.ttlSeconds: 30 s is shorter than a request on "POST \/orders" \(idempotency\.routes\[0\]\) may run: timeouts\.requestMs \(pool "default"\) is 60000 ms/)
  t.ok(buildConfig({ ...up, idempotency: { ...keyed, ttlSeconds: 60 } }), 'as long as the request timeout: accepted')
  t.ok(buildConfig({ ...up, idempotency: { ttlSeconds: 1 } }), 'no keyed route: nothing to check')
  const slow = { ...up, pools: { slow: { upstreams: [{ url: 'http://127.0.0.1:2' }], timeouts: { requestMs: 600_000 } } } }
  t.throws(() => buildConfig({ ...slow, routes: [{ match: { pathPrefix: '/reports' }, pool: 'slow' }], idempotency: { ...keyed, ttlSeconds: 300 } }),
    /idempotency\.ttlSeconds: 300 s .* pools\.slow\.timeouts\.requestMs is 600000 ms/,
    'a pool any POST may reach counts, whatever its path prefix (/reports/../orders starts with /reports)')
  t.ok(buildConfig({ ...slow, routes: [{ match: { methods: ['GET'] }, pool: 'slow' }], idempotency: { ...keyed, ttlSeconds: 300 } }), 'a pool only GET reaches does not')
})

t.test('an owner stopped past ttlSeconds: the retry on the other instance is refused, never executed again', async (t) => {
  const redis = await startRedis({ useEnv: false })
  t.teardown(() => redis.close())
  const apps = await Promise.all(['a', 'b'].map((n) => startOrdersApp(n, { url: redis.url })))
  t.teardown(() => Promise.all(apps.map((a) => a.kill())))
  const TTL_MS = 2000
  const config = {
    upstreams: apps.map((a) => ({ url: a.url })),
    // one process: its pid is the proxy that owns the claim (SIGSTOP stops it)
    listen: { processes: 1 },
    redis: { url: redis.url, commandTimeoutMs: 3000 },
    // the lease (5 s) outlasts the ttl (2 s): before, the record's own expiry was the ttl from the
    // claim whatever the renewals did, so it vanished while its request still ran
    idempotency: { routes: [{ match: 'POST /orders', required: true }], lockSeconds: 5, ttlSeconds: TTL_MS / 1000 },
    timeouts: { requestMs: TTL_MS },
    retry: { attempts: 1 },
    log: { access: false },
  }
  const lbs = await Promise.all([startClaylb({ config }), startClaylb({ config })])
  t.teardown(() => Promise.all(lbs.map((l) => { try { process.kill(l.pid, 'SIGCONT') } catch {} return l.stop() })))
  const before = await executions(apps)
  const key = newKey()
  const sentAt = Date.now()
  const first = send(lbs[0]!.url, { key, headers: { 'x-demo-delay-ms': '1000' } })
  // paced by progress: the backend has executed it, and its answer is on the way
  while (await executions(apps) === before) await sleep(20)
  process.kill(lbs[0]!.pid, 'SIGSTOP')
  // the fault is time itself: wait until the claim is older than ttlSeconds (the owner cannot renew)
  await sleep(Math.max(0, sentAt + TTL_MS + 500 - Date.now()))
  const retry = await send(lbs[1]!.url, { key })
  t.equal(retry.status, 409, `the retry past ttlSeconds is refused (in flight or outcome unknown), not executed: ${retry.body}`)
  t.equal(await executions(apps), before + 1, 'one execution')
  process.kill(lbs[0]!.pid, 'SIGCONT')
  const a = await first
  t.ok(a.status === 201 || a.status >= 500, `the owner answered once it ran again (${a.status})`)
  const later = await send(lbs[1]!.url, { key })
  t.ok(later.headers['idempotent-replayed'] === 'true' || later.status === 409, `a later retry replays or is refused (${later.status})`)
  t.equal(await executions(apps), before + 1, 'still one execution')
})
