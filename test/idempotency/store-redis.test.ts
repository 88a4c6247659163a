import t, { type Test } from 'tap'
import type { Cluster, Redis } from 'ioredis'
import { IdempotencyCore } from '../../src/shared/idempotency/core.js'
import { RedisStore } from '../../src/shared/idempotency/redis-store.js'
import { StoreUnavailableError } from '../../src/shared/idempotency/store.js'
import { startRedis, startRedisCluster } from '../helpers/redis.js'
import { allKeys, connectCluster, connectRedis } from '../helpers/ioredis.js'
import { storeConformance } from './store-conformance.js'

const settings = { leaseMs: 5000, ttlMs: 60_000, maxResponseBytes: 1024, waitMs: 0 }

function keyChecks (t: Test, getClient: () => Redis | Cluster): void {
  t.test('record keys hold a hash of the key, never the raw key, and every record is its own hash tag', async (t) => {
    const client = getClient()
    const core = new IdempotencyCore(new RedisStore(client, { keyPrefix: 'kc:' }), settings)
    const raw = 'my-secret-key:with{tag}-like*stuff'
    const r = await core.begin('scope', raw, 'fp')
    t.equal(r.kind, 'proceed')
    const keys = await allKeys(client, 'kc:*')
    t.equal(keys.length, 1)
    t.match(keys[0], /^kc:idem:\{[0-9a-f]{64}\}$/)
    t.notOk(keys[0]!.includes('secret'), 'raw key absent')
    if (r.kind === 'proceed') await core.release(r.claim)
    t.same(await allKeys(client, 'kc:*'), [], 'release deleted the record')
  })
}

t.test('standalone redis-server', async (t) => {
  const server = await startRedis()
  const client = await connectRedis(server.url)
  t.teardown(async () => { client.disconnect(); await server.close() })
  storeConformance(t, () => new RedisStore(client, { keyPrefix: 'conf:', notify: true }))
  keyChecks(t, () => client)
})

t.test('3-master Redis Cluster', async (t) => {
  const cluster = await startRedisCluster()
  const client = await connectCluster(cluster.urls)
  t.teardown(async () => { client.disconnect(); await cluster.close() })
  storeConformance(t, () => new RedisStore(client, { keyPrefix: 'conf:', notify: true }))
  keyChecks(t, () => client)
  t.test('records spread over more than one master', async (t) => {
    const core = new IdempotencyCore(new RedisStore(client, { keyPrefix: 'spread:' }), settings)
    for (let i = 0; i < 30; i++) await core.begin('s', `k${i}`, 'fp')
    const perMaster = await Promise.all(client.nodes('master').map((n) => n.keys('spread:*')))
    t.ok(perMaster.filter((k) => k.length > 0).length >= 2, `per master: ${perMaster.map((k) => k.length).join(',')}`)
  })
})

t.test('Redis down: every call fails fast with StoreUnavailableError', async (t) => {
  const server = await startRedis({ useEnv: false })
  const client = await connectRedis(server.url)
  t.teardown(async () => { client.disconnect(); await server.close() })
  const core = new IdempotencyCore(new RedisStore(client), settings)
  await server.stop()
  await new Promise((resolve) => setTimeout(resolve, 100))
  const started = Date.now()
  await t.rejects(core.begin('s', 'k', 'fp'), StoreUnavailableError)
  t.ok(Date.now() - started < 3000, `failed within the bound (${Date.now() - started} ms)`)
})

t.test('a result the store could not take during an outage is stored once Redis is back inside the lease', async (t) => {
  const server = await startRedis({ useEnv: false, persist: true })
  const client = await connectRedis(server.url)
  t.teardown(async () => { client.disconnect(); await server.close() })
  const core = new IdempotencyCore(new RedisStore(client, { keyPrefix: 'out:' }), { ...settings, leaseMs: 4000 })
  const r = await core.begin('s', 'k', 'fp')
  if (r.kind !== 'proceed') throw new Error(`expected a claim, got ${r.kind}`)
  // the request executed; Redis dies before its response is recorded
  await server.stop()
  await new Promise((resolve) => setTimeout(resolve, 100))
  const response = { status: 201, headers: ['content-type', 'application/json'], body: Buffer.from('{"id":1}') }
  await t.rejects(core.complete(r.claim, response), StoreUnavailableError, 'the first offer fails with the outage')
  await new Promise((resolve) => setTimeout(resolve, 1000))
  await server.start()
  // the claim survived the restart (append-only file); the core offers the result again meanwhile
  let replay
  for (let i = 0; i < 40 && replay === undefined; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100))
    const again = await core.begin('s', 'k', 'fp').catch(() => undefined)
    if (again?.kind === 'replay') replay = again.response
    else if (again?.kind === 'proceed') throw new Error('the key was free: the retry would execute a second time')
  }
  t.ok(replay, 'a retry after the outage replays the result instead of executing again')
  t.equal(replay?.status, 201)
  t.equal(replay?.body.toString(), '{"id":1}')
})
