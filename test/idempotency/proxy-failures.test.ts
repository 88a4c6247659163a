/**
 * The idempotency layer at the proxy when things fail: dead upstreams, a backend killed mid-request,
 * and Redis stopped. Two real claylb instances, real backends, real redis-server.
 */
import t, { type Test } from 'tap'
import { deadPort } from '../helpers/backend.js'
import { req, sleep } from '../helpers/http.js'
import { startRedis } from '../helpers/redis.js'
import { LEASE_MS, newKey, send } from './http-conformance.js'
import { executions, metricSum, ordersCount, setupWithRedis as setup, type Stack } from './stack.js'

t.test('a POST whose connection failed is retried on another upstream under the same claim', async (t) => {
  const dead = `http://127.0.0.1:${await deadPort()}`
  const s = await setup(t, { upstreams: [dead] })
  const before = await ordersCount(s.client)
  for (let i = 0; i < 6; i++) {
    const key = newKey()
    const a = await send(s.lbs[i % 2]!.url, { key })
    t.equal(a.status, 201, `try ${i}`)
    t.equal((await send(s.lbs[(i + 1) % 2]!.url, { key })).body, a.body, 'and replays')
  }
  t.equal(await ordersCount(s.client), before + 6, 'one execution per key')
})

/** A keyed POST whose upstream breaks after creating the order (`fault`): the client gets a 502 problem, the order ran once. */
async function brokenAfterCreate (t: Test, s: Stack, fault: string): Promise<{ key: string, before: number }> {
  const before = await ordersCount(s.client)
  const key = newKey()
  const first = await send(s.lbs[0]!.url, { key, headers: { 'x-demo-fault': fault } })
  t.equal(first.status, 502, 'the client saw the upstream fail: a problem answer, not a bare close')
  t.equal(JSON.parse(first.body).type, 'urn:claylb:problem:upstream-failed')
  t.equal(await ordersCount(s.client), before + 1, 'the order was created')
  return { key, before }
}

t.test('upstream killed after creating the order, before answering: outcome-unknown, stored, never run again', async (t) => {
  const s = await setup(t)
  const { key, before } = await brokenAfterCreate(t, s, 'die-after-create')
  const retry = await send(s.lbs[1]!.url, { key })
  t.equal(retry.status, 409)
  t.equal(JSON.parse(retry.body).type, 'urn:claylb:problem:outcome-unknown')
  t.equal(retry.headers['retry-after'], undefined, 'no retry-after: retrying cannot help')
  t.equal(await ordersCount(s.client), before + 1, 'the retry did not execute')
  // well past the lease (lockSeconds) the key is still unknown, never free
  await sleep(LEASE_MS * 2 + 500)
  for (const lb of s.lbs) {
    const later = await send(lb.url, { key })
    t.equal(later.status, 409, 'still refused after the lease')
    t.equal(JSON.parse(later.body).type, 'urn:claylb:problem:outcome-unknown')
  }
  t.equal(await ordersCount(s.client), before + 1, 'executed once, ever')
  t.equal(await metricSum(s.lbs, 'claylb_idempotency_unknown_outcomes_total'), 1, 'one unknown outcome counted')
  t.equal(await metricSum(s.lbs, 'claylb_idempotency_requests_total{outcome="outcome_unknown"}'), 3, 'three retries answered outcome-unknown')
})

t.test('upstream cut mid-answer after creating the order: a 502 (none of it reached the client), then outcome-unknown, never the cut answer', async (t) => {
  const s = await setup(t)
  // the proxy holds back the last chunk until the record is committed: here that was all of it
  const { key, before } = await brokenAfterCreate(t, s, 'reset-mid-body')
  for (const lb of s.lbs) {
    const retry = await send(lb.url, { key })
    t.equal(retry.status, 409, 'a retry is not answered with the cut answer')
    t.equal(JSON.parse(retry.body).type, 'urn:claylb:problem:outcome-unknown')
  }
  t.equal(await ordersCount(s.client), before + 1, 'nor run again inside the lease')
})

t.test('Redis stopped: keyed POSTs get 503 fast and never execute; other requests still work', async (t) => {
  const redis = await startRedis({ useEnv: false })
  const s = await setup(t, { redis })
  t.teardown(() => redis.close())
  t.equal((await send(s.lbs[0]!.url, { key: newKey() })).status, 201, 'works while Redis is up')
  const before = await executions(s.apps)
  await redis.stop()
  for (const lb of s.lbs) {
    const started = Date.now()
    const a = await send(lb.url, { key: newKey() })
    const ms = Date.now() - started
    t.equal(a.status, 503)
    t.equal(JSON.parse(a.body).type, 'urn:claylb:problem:state-unavailable')
    t.ok(Number(a.headers['retry-after']) >= 1, 'retry-after')
    t.ok(ms < 5000, `answered within the bound (${ms} ms)`)
  }
  t.equal(await executions(s.apps), before, 'nothing executed unprotected')
  t.equal(await metricSum(s.lbs, 'claylb_idempotency_requests_total{outcome="state_unavailable"}'), 2, 'fail-closed 503s counted')
  const g = await req(`${s.lbs[0]!.url}/`)
  t.equal(g.status, 200, 'GETs still routed')
  await redis.start()
  // ioredis reconnects by itself (bounded backoff)
  let ok = 0
  for (let i = 0; i < 50 && ok === 0; i++) {
    if ((await send(s.lbs[0]!.url, { key: newKey() })).status === 201) ok++
    else await sleep(200)
  }
  t.equal(ok, 1, 'keyed POSTs work again once Redis is back')
})

t.test('an upstream 429 or 503 releases the key (the retry it asks for executes); a 500 is stored and replays', async (t) => {
  const s = await setup(t)
  for (const status of [429, 503]) {
    const key = newKey()
    const before = await ordersCount(s.client)
    const refused = await send(s.lbs[0]!.url, { key, headers: { 'x-demo-status': String(status) } })
    t.equal(refused.status, status, `the upstream's ${status} reaches the client`)
    t.equal(refused.headers['retry-after'], '1', 'with its retry-after')
    t.equal(refused.headers['idempotent-replayed'], undefined)
    const retry = await send(s.lbs[1]!.url, { key })
    t.equal(retry.status, 201, `the retry after a ${status} executes: the key was released, not stored`)
    t.equal(await ordersCount(s.client), before + 1, 'once')
    const replay = await send(s.lbs[0]!.url, { key })
    t.equal(replay.body, retry.body, 'and from then on replays the 201')
  }
  const key = newKey()
  const failed = await send(s.lbs[0]!.url, { key, headers: { 'x-demo-status': '500' } })
  t.equal(failed.status, 500)
  const again = await send(s.lbs[1]!.url, { key })
  t.equal(again.status, 500, 'a 500 is a result: stored')
  t.equal(again.headers['idempotent-replayed'], 'true')
  t.equal(again.body, failed.body, 'replayed byte for byte')
})

t.test('releaseStatuses: [] stores a 503 like any other answer (the spec read literally)', async (t) => {
  const s = await setup(t, { idempotency: { releaseStatuses: [] } })
  const key = newKey()
  const refused = await send(s.lbs[0]!.url, { key, headers: { 'x-demo-status': '503' } })
  t.equal(refused.status, 503)
  const retry = await send(s.lbs[1]!.url, { key })
  t.equal(retry.status, 503, 'replayed')
  t.equal(retry.headers['idempotent-replayed'], 'true')
})
