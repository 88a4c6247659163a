/**
 * CLI level, the real thing: two claylb instances, each with its own ephemeral demo workers
 * (builtin:demo), sharing one real redis-server. The count is the demo's own GET /orders/count.
 */
import t from 'tap'
import { startClaylb, type Claylb } from '../helpers/claylb.js'
import { req, sleep } from '../helpers/http.js'
import { allKeys, connectRedis } from '../helpers/ioredis.js'
import { startRedis } from '../helpers/redis.js'
import { httpConformance, LEASE_MS, MAX_RESPONSE_BYTES, newKey, send } from './http-conformance.js'

t.test('two claylb instances with demo workers, one Redis', async (t) => {
  const redis = await startRedis({ useEnv: false })
  const client = await connectRedis(redis.url)
  const config = {
    workers: { count: 2, faults: true },
    redis: { url: redis.url, commandTimeoutMs: 3000 },
    // as config/default.yaml: the demo app dedupes on claylb-idempotency-id
    idempotency: { routes: [{ match: 'POST /orders', required: true, upstreamDedupes: true }], lockSeconds: LEASE_MS / 1000, maxResponseBytes: MAX_RESPONSE_BYTES },
    log: { access: false },
  }
  const lbs: Claylb[] = await Promise.all([startClaylb({ config, waitReady: true }), startClaylb({ config, waitReady: true })])
  t.teardown(async () => { await Promise.all(lbs.map((l) => l.stop())); client.disconnect(); await redis.close() })
  const count = async (): Promise<number> => {
    const r = await req(`${lbs[0]!.url}/orders/count`)
    if (r.status !== 200) throw new Error(`GET /orders/count: ${r.status} ${r.body}`)
    return (JSON.parse(r.body) as { count: number }).count
  }

  httpConformance(t, () => ({
    urls: lbs.map((l) => l.url),
    orders: count,
    records: async () => (await allKeys(client, 'claylb:idem:*')).length,
    setsCookie: false,
  }))

  t.test('worker SIGKILLed after creating the order, before answering: the retry gets that order (the app dedupes), then replays', async (t) => {
    const before = await count()
    const key = newKey()
    const first = await send(lbs[0]!.url, { key, headers: { 'x-demo-fault': 'die-after-create' } })
    t.equal(first.status, 502, 'the client saw the worker die')
    t.equal(await count(), before + 1, 'the order was created')
    const retry = await send(lbs[1]!.url, { key })
    t.equal(retry.status, 201, 'upstreamDedupes: the retry is forwarded again under a new lease')
    t.equal(retry.headers['x-demo-deduped'], 'true', 'and the app answered with the order it made the first time')
    t.equal(await count(), before + 1, 'one order, ever')
    const replay = await send(lbs[0]!.url, { key })
    t.equal(replay.headers['idempotent-replayed'], 'true', 'from then on claylb replays it')
    t.equal(replay.body, retry.body)
  })

  t.test('the app sees the record id and fence; a client cannot send its own', async (t) => {
    const key = newKey()
    const a = await send(lbs[0]!.url, { key, headers: { 'claylb-idempotency-id': 'f'.repeat(64), 'claylb-idempotency-fence': '99' } })
    t.equal(a.status, 201)
    t.not(a.headers['x-demo-deduped'], 'true', 'a forged id did not reach the app')
    const records = await allKeys(client, 'claylb:demo:{orders}:id:*')
    t.notOk(records.includes(`claylb:demo:{orders}:id:${'f'.repeat(64)}`), 'the forged id was never stored')
  })

  t.test('Redis stopped: keyed POSTs 503 within the bound, nothing reaches a worker, GETs still work', async (t) => {
    const workerRequests = async (): Promise<number> => {
      let sum = 0
      for (const lb of lbs) {
        const st = JSON.parse((await req(`${lb.admin}/status`)).body) as { workers: Array<{ requests: number }> }
        for (const w of st.workers) sum += w.requests
      }
      return sum
    }
    await redis.stop()
    const before = await workerRequests()
    for (const lb of lbs) {
      const started = Date.now()
      const a = await send(lb.url, { key: newKey() })
      t.equal(a.status, 503)
      t.equal(JSON.parse(a.body).type, 'urn:claylb:problem:state-unavailable')
      t.ok(Number(a.headers['retry-after']) >= 1, 'retry-after')
      t.ok(Date.now() - started < 5000, `within the bound (${Date.now() - started} ms)`)
    }
    t.equal(await workerRequests(), before, 'no worker saw the POSTs')
    t.equal((await req(`${lbs[0]!.url}/`)).status, 200, 'GET / still routed')
    await redis.start()
  })
})
