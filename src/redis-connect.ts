/**
 * @module redis-connect
 * TEMPORARY: a minimal Redis client factory until the shared connection layer (src/redis/, branch
 * `sessions`) is on main. Bounded command timeouts, no offline queue, background reconnection.
 */
import { Cluster, Redis } from 'ioredis'
import type { Config } from './config/schema.js'

export type RedisClient = Redis | Cluster

export function createRedis (config: Config['redis']): RedisClient {
  const retryStrategy = (n: number): number => Math.min(n * 50, 1000)
  const common = { commandTimeout: config.commandTimeoutMs, maxRetriesPerRequest: 0 }
  const c = config.cluster
    ? new Cluster(config.cluster.map((u) => ({ host: new URL(u).hostname, port: Number(new URL(u).port || 6379) })), { enableOfflineQueue: false, clusterRetryStrategy: retryStrategy, redisOptions: common })
    : new Redis(config.url, { ...common, enableOfflineQueue: false, retryStrategy })
  c.on('error', () => {})
  return c
}

export function waitReady (c: RedisClient, timeoutMs: number, name: string): Promise<void> {
  if (c.status === 'ready') return Promise.resolve()
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${name} is not reachable within ${timeoutMs} ms: set REDIS_URL, --redis or redis.url`)), timeoutMs)
    c.once('ready', () => { clearTimeout(t); resolve() })
  })
}
