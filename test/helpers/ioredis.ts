/**
 * Redis clients for tests, made by the product's own connection layer (bounded command timeouts, no
 * offline queue), with a generous timeout for a shared machine.
 */
import { Cluster, type Redis } from 'ioredis'
import { createRedis, waitReady } from '../../src/shared/redis/index.js'

const base = { keyPrefix: '', commandTimeoutMs: 1000 }

export async function connectRedis (url: string): Promise<Redis> {
  const c = createRedis({ ...base, url }, 'test')
  await waitReady(c, 10_000)
  return c as Redis
}

export async function connectCluster (urls: readonly string[]): Promise<Cluster> {
  const c = createRedis({ ...base, url: urls[0]!, cluster: urls }, 'test')
  await waitReady(c, 10_000)
  return c as Cluster
}

/** Every key on a standalone server or on every master of a cluster. */
export async function allKeys (c: Redis | Cluster, pattern = '*'): Promise<string[]> {
  const nodes = c instanceof Cluster ? c.nodes('master') : [c]
  const out: string[] = []
  for (const n of nodes) {
    let cursor = '0'
    do {
      const [next, keys] = await n.scan(cursor, 'MATCH', pattern, 'COUNT', 1000)
      cursor = next
      out.push(...keys)
    } while (cursor !== '0')
  }
  return out
}
