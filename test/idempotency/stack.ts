/**
 * Two real claylb instances in front of two real orders-app backends, all sharing one Redis
 * (standalone or Cluster).
 */
import type { Test } from 'tap'
import type { Cluster, Redis } from 'ioredis'
import { startClaylb, type Claylb } from '../helpers/claylb.js'
import { req } from '../helpers/http.js'
import { allKeys, connectCluster, connectRedis } from '../helpers/ioredis.js'
import { startOrdersApp, type OrdersApp } from '../helpers/orders-app.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'
import { LEASE_MS, MAX_RESPONSE_BYTES, type HttpTarget } from './http-conformance.js'

export interface Stack { client: Redis | Cluster, apps: OrdersApp[], lbs: Claylb[], target: HttpTarget }

export async function startStack (t: Test, o: { url?: string, cluster?: readonly string[], upstreams?: string[], idempotency?: Record<string, unknown> }): Promise<Stack> {
  const client = o.cluster ? await connectCluster(o.cluster) : await connectRedis(o.url!)
  const apps = await Promise.all(['a', 'b'].map((n) => startOrdersApp(n, o.cluster ? { cluster: o.cluster } : { url: o.url! })))
  const config = {
    upstreams: (o.upstreams ?? []).concat(apps.map((a) => a.url)).map((url) => ({ url })),
    // generous command timeout: the suites run beside others on a small shared machine
    redis: o.cluster ? { cluster: o.cluster, commandTimeoutMs: 3000 } : { url: o.url, commandTimeoutMs: 3000 },
    idempotency: {
      routes: [{ match: 'POST /orders', required: true }, { match: 'POST /big', required: false }],
      lockSeconds: LEASE_MS / 1000,
      maxResponseBytes: MAX_RESPONSE_BYTES,
      ...o.idempotency,
    },
    log: { access: false },
  }
  const lbs = await Promise.all([startClaylb({ config }), startClaylb({ config })])
  t.teardown(async () => {
    await Promise.all(lbs.map((l) => l.stop()))
    await Promise.all(apps.map((a) => a.kill()))
    client.disconnect()
  })
  const target: HttpTarget = {
    urls: lbs.map((l) => l.url),
    orders: () => ordersCount(client),
    bigs: async () => Number(await client.get('test:{big}:count') ?? 0),
    records: async () => (await allKeys(client, 'claylb:idem:*')).length,
  }
  return { client, apps, lbs, target }
}

export const ordersCount = async (client: Redis | Cluster): Promise<number> => Number(await client.get('test:{orders}:count') ?? 0)

/** executions seen by the live backends themselves (counted in memory, so also while Redis is down) */
export async function executions (apps: OrdersApp[]): Promise<number> {
  let sum = 0
  for (const a of apps) if (a.proc.exitCode === null && a.proc.signalCode === null) sum += (JSON.parse((await req(`${a.url}/executions`)).body) as { executions: number }).executions
  return sum
}

/** A stack on its own redis-server (or on the one given, which the caller then owns). */
export async function setupWithRedis (t: Test, o: { redis?: RedisServer, upstreams?: string[], idempotency?: Record<string, unknown> } = {}): Promise<Stack & { redis: RedisServer }> {
  const redis = o.redis ?? await startRedis({ useEnv: false })
  if (o.redis === undefined) t.teardown(() => redis.close())
  const stack = await startStack(t, { url: redis.url, ...(o.upstreams ? { upstreams: o.upstreams } : {}), ...(o.idempotency ? { idempotency: o.idempotency } : {}) })
  return { ...stack, redis }
}

/** A counter summed over the instances' /metrics (Prometheus text), e.g. `claylb_idempotency_requests_total{outcome="executed"}`. */
export async function metricSum (lbs: readonly Claylb[], series: string): Promise<number> {
  let sum = 0
  for (const lb of lbs) {
    const text = (await req(`${lb.admin}/metrics`)).body
    for (const line of text.split('\n')) if (line.startsWith(series + ' ')) sum += Number(line.slice(series.length + 1))
  }
  return sum
}
