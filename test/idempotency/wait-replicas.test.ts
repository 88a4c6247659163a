/**
 * `idempotency.waitReplicas`: a real primary and a real replica started by the test. A claim the
 * replica does not acknowledge in time is released and refused (503 at the proxy, nothing executed);
 * a stored answer the replica missed is reported, and the answer stands.
 */
import t, { type Test } from 'tap'
import type { Redis } from 'ioredis'
import { IdempotencyCore } from '../../src/shared/idempotency/core.js'
import { NotReplicatedError, RedisStore } from '../../src/shared/idempotency/redis-store.js'
import { StoreUnavailableError } from '../../src/shared/idempotency/store.js'
import { connectRedis } from '../helpers/ioredis.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'
import { until } from '../workers/load.js'
import { newKey, send } from './http-conformance.js'
import { ordersCount, setupWithRedis } from './stack.js'

async function primaryWithReplica (t: Test): Promise<{ primary: RedisServer, replica: RedisServer, client: Redis, replicaClient: Redis }> {
  const primary = await startRedis({ useEnv: false })
  const replica = await startRedis({ useEnv: false, replicaOf: primary.port })
  t.teardown(async () => { await replica.close(); await primary.close() })
  const client = await connectRedis(primary.url)
  const replicaClient = await connectRedis(replica.url)
  t.teardown(() => { client.disconnect(); replicaClient.disconnect() })
  await until(() => replicaClient.info('replication'), (info) => info.includes('master_link_status:up'), 15_000, 'the replica is in sync')
  return { primary, replica, client, replicaClient }
}

const settings = { leaseMs: 5000, ttlMs: 60_000, maxResponseBytes: 1024, waitMs: 0 }
const response = { status: 201, headers: ['content-type', 'application/json'], body: Buffer.from('{"id":1}') }

t.test('store: claims and records wait for the replica; an unacknowledged claim is released and refused', async (t) => {
  const { replica, client, replicaClient } = await primaryWithReplica(t)
  const shortfalls: number[] = []
  const store = new RedisStore(client, { keyPrefix: 'wr:', waitReplicas: 1, waitTimeoutMs: 300, onUnreplicated: (acked) => shortfalls.push(acked) })
  const core = new IdempotencyCore(store, settings)

  const a = await core.begin('s', 'a', 'fp')
  if (a.kind !== 'proceed') throw new Error(`expected a claim, got ${a.kind}`)
  t.equal(await replicaClient.hget(store.keyOf(a.claim.id), 'st'), 'i', 'the claim is on the replica when begin returns')
  t.ok(await core.complete(a.claim, response))
  t.equal(await replicaClient.hget(store.keyOf(a.claim.id), 'st'), 'c', 'the record is on the replica when complete returns')
  t.same(shortfalls, [], 'nothing reported while the replica acknowledges')

  const b = await core.begin('s', 'b', 'fp')
  if (b.kind !== 'proceed') throw new Error(`expected a claim, got ${b.kind}`)
  replica.pause()
  t.teardown(() => replica.resume())
  const refused = await core.begin('s', 'c', 'fp').then(() => undefined, (err: unknown) => err)
  t.ok(refused instanceof NotReplicatedError, 'a claim the replica did not acknowledge is refused')
  t.ok(refused instanceof StoreUnavailableError, 'as a store outage: the proxy answers 503')
  t.equal((refused as NotReplicatedError).acked, 0)
  t.equal(await client.exists(store.keyOf(core.recordId('s', 'c'))), 0, 'and released on the primary: the key is not blocked')
  t.ok(await core.complete(b.claim, response), 'an answer that executed is stored whatever the replica does')
  t.same(shortfalls, [0], 'and its missing acknowledgement reported')

  replica.resume()
  await until(() => replicaClient.info('replication'), (info) => info.includes('master_link_status:up'), 15_000, 'the replica is back')
  const c = await core.begin('s', 'c', 'fp')
  t.equal(c.kind, 'proceed', 'with the replica back the refused key claims')
})

t.test('proxy: waitReplicas 1 answers 201 with the replica, 503 state-unavailable without it, nothing executed', async (t) => {
  const { primary, replica } = await primaryWithReplica(t)
  const s = await setupWithRedis(t, { redis: primary, idempotency: { waitReplicas: 1, waitTimeoutMs: 300 } })
  const key = newKey()
  const first = await send(s.lbs[0]!.url, { key })
  t.equal(first.status, 201)
  t.equal((await send(s.lbs[1]!.url, { key })).headers['idempotent-replayed'], 'true')

  replica.pause()
  t.teardown(() => replica.resume())
  const before = await ordersCount(s.client)
  const key2 = newKey()
  const refused = await send(s.lbs[0]!.url, { key: key2 })
  t.equal(refused.status, 503)
  t.equal(JSON.parse(refused.body).type, 'urn:claylb:problem:state-unavailable')
  t.equal(await ordersCount(s.client), before, 'not executed')
  replica.resume()
  const again = await until(() => send(s.lbs[1]!.url, { key: key2 }), (r) => r.status === 201, 15_000, 'the retry executes once the replica is back')
  t.equal(again.status, 201, 'the key was released: the retry executes')
  t.equal(await ordersCount(s.client), before + 1, 'once')
})

t.test('config: waitTimeoutMs must be below the command timeout; a cluster too (wait-replicas-cluster.test.ts)', async (t) => {
  const { buildConfig } = await import('../../src/shared/config/load.js')
  t.throws(() => buildConfig({ redis: { commandTimeoutMs: 200 }, idempotency: { waitReplicas: 1, waitTimeoutMs: 250 } }), /idempotency\.waitTimeoutMs: must be below redis\.commandTimeoutMs/)
  t.equal(buildConfig({ redis: { cluster: ['redis://127.0.0.1:7000'] }, idempotency: { waitReplicas: 1 } }).idempotency.waitReplicas, 1)
  t.equal(buildConfig({ idempotency: { waitReplicas: 2 } }).idempotency.waitReplicas, 2)
})
