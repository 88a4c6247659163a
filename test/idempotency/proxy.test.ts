/**
 * The idempotency layer at the proxy: two real claylb instances sharing one real redis-server, in
 * front of real backend processes (test/fixtures/orders-app.mjs) that count executions in Redis.
 */
import t from 'tap'
import { req, sleep } from '../helpers/http.js'
import { allKeys } from '../helpers/ioredis.js'
import { httpConformance, newKey, send } from './http-conformance.js'
import { executions, metricSum, ordersCount, setupWithRedis as setup } from './stack.js'

t.test('conformance: two instances, one redis-server', async (t) => {
  const s = await setup(t)
  httpConformance(t, () => s.target)
  t.test('GET /orders/count through the proxy', async (t) => {
    const r = await req(`${s.lbs[0]!.url}/orders/count`)
    t.equal(r.status, 200)
    t.equal(JSON.parse(r.body).count, await ordersCount(s.client))
  })
  t.test('a replay touches no upstream and leaves the round-robin cursor where it was', async (t) => {
    const lb = s.lbs[0]!
    const key = newKey()
    const w1 = JSON.parse((await req(`${lb.url}/`)).body).worker
    const first = await send(lb.url, { key })
    t.not(first.headers['x-worker-id'], w1, 'the POST went to the next upstream')
    const before = await executions(s.apps)
    for (let i = 0; i < 3; i++) t.equal((await send(lb.url, { key })).headers['idempotent-replayed'], 'true')
    t.equal(await executions(s.apps), before, 'no upstream saw the replays')
    const w2 = JSON.parse((await req(`${lb.url}/`)).body).worker
    t.equal(w2, w1, 'the cursor did not move: GET goes where it would have gone without the replays')
  })
  t.test('the counters on /metrics saw every kind of outcome', async (t) => {
    const n = (o: string): Promise<number> => metricSum(s.lbs, `claylb_idempotency_requests_total{outcome="${o}"}`)
    t.equal(await n('executed'), await ordersCount(s.client) + await s.target.bigs!(), 'executed = real executions (orders and /big)')
    for (const o of ['replayed', 'conflict', 'mismatch', 'key_invalid', 'key_missing', 'not_stored']) t.ok(await n(o) > 0, o)
    t.equal(await n('state_unavailable'), 0)
  })
  t.test('other routes pay nothing: an invalid key on an unconfigured route passes through, nothing stored', async (t) => {
    const records = (await allKeys(s.client, 'claylb:idem:*')).length
    const r = await req(`${s.lbs[0]!.url}/other`, { method: 'POST', headers: { 'idempotency-key': '{bad,key}' }, body: '{}' })
    t.equal(r.status, 200)
    const g = await req(`${s.lbs[0]!.url}/orders/count`, { headers: { 'idempotency-key': '' } })
    t.equal(g.status, 200, 'GET on a POST-only route is not keyed')
    t.equal((await allKeys(s.client, 'claylb:idem:*')).length, records, 'no record made')
  })
})

t.test('onConcurrent: wait: a duplicate on the other instance gets the first answer instead of 409', async (t) => {
  const s = await setup(t, { idempotency: { onConcurrent: 'wait', lockSeconds: 5 } })
  const before = await ordersCount(s.client)
  const key = newKey()
  const first = send(s.lbs[0]!.url, { key, headers: { 'x-demo-delay-ms': '700' } })
  await sleep(200)
  const dups = await Promise.all([send(s.lbs[1]!.url, { key }), send(s.lbs[0]!.url, { key })])
  const a = await first
  // which of the three claims first is the machine's choice (the sleep only makes the first likely):
  // one executes, the other two wait for it and replay its answer
  const all = [a, ...dups]
  for (const d of all) {
    t.equal(d.status, 201, 'waited instead of 409')
    t.equal(d.body, all[0]!.body, 'the first answer')
  }
  t.equal(all.filter((d) => d.headers['idempotent-replayed'] !== 'true').length, 1, 'one execution, two replays')
  t.equal(await ordersCount(s.client), before + 1)
})

t.test('409 in flight: retry-after says how long the first has been running, not the whole lease', async (t) => {
  const s = await setup(t, { idempotency: { lockSeconds: 30 } })
  const key = newKey()
  const sentAt = Date.now()
  const first = send(s.lbs[0]!.url, { key, headers: { 'x-demo-delay-ms': '1500' } })
  await sleep(300)
  const dup = await send(s.lbs[1]!.url, { key })
  const bound = Math.ceil((Date.now() - sentAt) / 1000)
  t.equal(dup.status, 409)
  const ra = Number(dup.headers['retry-after'])
  t.ok(ra >= 1 && ra <= bound, `retry-after ${ra} s: at most the ${bound} s the first has been running (the lease is 30 s)`)
  t.equal((await first).status, 201)
})
