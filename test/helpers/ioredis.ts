/**
 * ioredis clients for tests, with the settings the product uses: bounded command timeouts and no
 * offline queue (a command while disconnected fails at once instead of waiting).
 */
import { Cluster, Redis } from 'ioredis'

const settings = { commandTimeout: 1000, enableOfflineQueue: false, maxRetriesPerRequest: 1 } as const

function ready (c: Redis | Cluster): Promise<void> {
  if (c.status === 'ready') return Promise.resolve()
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('redis did not become ready')), 10_000)
    c.once('ready', () => { clearTimeout(t); resolve() })
  })
}

export async function connectRedis (url: string): Promise<Redis> {
  const c = new Redis(url, settings)
  c.on('error', () => {})
  await ready(c)
  return c
}

export async function connectCluster (urls: readonly string[]): Promise<Cluster> {
  const c = new Cluster(urls.map((u) => { const p = new URL(u); return { host: p.hostname, port: Number(p.port) } }), {
    enableOfflineQueue: false,
    redisOptions: { commandTimeout: settings.commandTimeout, maxRetriesPerRequest: 1 },
  })
  c.on('error', () => {})
  await ready(c)
  return c
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
