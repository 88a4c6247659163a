/**
 * The middleware passes the same HTTP conformance cases as the proxy: real Express and Fastify servers
 * (two of each, sharing one real redis-server through the Redis store) and a plain node:http server
 * with the in-memory store.
 */
import http, { type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import express from 'express'
import Fastify, { type FastifyInstance } from 'fastify'
import { randomUUID } from 'node:crypto'
import type { Redis } from 'ioredis'
import { idempotencyMiddleware, idempotencyPlugin, MemoryStore, RedisStore, withIdempotency, type IdempotencyOptions } from '../../src/index.js'
import { sleep } from '../helpers/http.js'
import { allKeys, connectRedis } from '../helpers/ioredis.js'
import { startRedis } from '../helpers/redis.js'
import { httpConformance, LEASE_MS, MAX_RESPONSE_BYTES } from './http-conformance.js'

const routes = [{ match: 'POST /orders', required: true }, { match: 'POST /big' }]
const base: IdempotencyOptions = { routes, lockSeconds: LEASE_MS / 1000, maxResponseBytes: MAX_RESPONSE_BYTES }

interface Counters { orders: number, bigs: number }
const order = (name: string, body: unknown): Record<string, unknown> => ({ id: randomUUID(), worker: name, createdAt: new Date().toISOString(), ...(body as object) })
const delayOf = (h: string | string[] | undefined): number => Number(h ?? 0)

async function listen (server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

function expressApp (name: string, counters: Counters, options: IdempotencyOptions): Server {
  const app = express()
  app.use(express.json())
  app.use(idempotencyMiddleware(options))
  app.post('/orders', async (req, res) => {
    counters.orders++
    await sleep(delayOf(req.headers['x-demo-delay-ms']))
    const o = order(name, req.body)
    res.status(201).set('set-cookie', `seen=${name}`).set('location', `/orders/${String(o['id'])}`).json(o)
  })
  app.post('/big', (req, res) => {
    counters.bigs++
    const n = Number(req.query['n'])
    res.status(200).type('application/octet-stream')
    for (let i = 0; i < n; i += 1000) res.write(Buffer.alloc(Math.min(1000, n - i), 97))
    res.end()
  })
  return http.createServer(app)
}

function fastifyApp (name: string, counters: Counters, options: IdempotencyOptions): FastifyInstance {
  const app = Fastify()
  app.register(idempotencyPlugin, options)
  app.post('/orders', async (req, reply) => {
    counters.orders++
    await sleep(delayOf(req.headers['x-demo-delay-ms']))
    const o = order(name, req.body)
    return reply.code(201).header('set-cookie', `seen=${name}`).header('location', `/orders/${String(o['id'])}`).send(o)
  })
  app.post('/big', async (req, reply) => {
    counters.bigs++
    const n = Number((req.query as Record<string, string>)['n'])
    return reply.type('application/octet-stream').send(Buffer.alloc(n, 97))
  })
  return app
}

function nodeApp (name: string, counters: Counters, options: IdempotencyOptions): Server {
  return http.createServer(withIdempotency((req, res, body) => {
    const url = new URL(req.url!, 'http://x')
    if (url.pathname === '/orders') {
      counters.orders++
      setTimeout(() => {
        const o = order(name, JSON.parse(body.toString() || '{}'))
        res.writeHead(201, { 'content-type': 'application/json', 'set-cookie': `seen=${name}`, location: `/orders/${String(o['id'])}` })
        res.end(JSON.stringify(o))
      }, delayOf(req.headers['x-demo-delay-ms']))
    } else if (url.pathname === '/big') {
      counters.bigs++
      const n = Number(url.searchParams.get('n'))
      res.writeHead(200, { 'content-type': 'application/octet-stream' })
      for (let i = 0; i < n; i += 1000) res.write(Buffer.alloc(Math.min(1000, n - i), 97))
      res.end()
    } else {
      res.end('{}')
    }
  }, options))
}

let redisUrl: string
const clients: Redis[] = []
t.before(async () => {
  const redis = await startRedis({ useEnv: false })
  redisUrl = redis.url
  t.teardown(async () => { for (const c of clients) c.disconnect(); await redis.close() })
})
const redisClient = async (): Promise<Redis> => { const c = await connectRedis(redisUrl); clients.push(c); return c }

t.test('Express: two servers sharing one Redis', async (t) => {
  const counters = { orders: 0, bigs: 0 }
  const [c1, c2] = [await redisClient(), await redisClient()]
  const servers = [expressApp('e1', counters, { ...base, store: new RedisStore(c1, { keyPrefix: 'ex:' }) }), expressApp('e2', counters, { ...base, store: new RedisStore(c2, { keyPrefix: 'ex:' }) })]
  const urls = await Promise.all(servers.map(listen))
  t.teardown(() => { for (const s of servers) { s.closeAllConnections(); s.close() } })
  httpConformance(t, () => ({ urls, orders: async () => counters.orders, bigs: async () => counters.bigs, records: async () => (await allKeys(c1, 'ex:idem:*')).length }))
})

t.test('Fastify: two servers sharing one Redis', async (t) => {
  const counters = { orders: 0, bigs: 0 }
  const [c1, c2] = [await redisClient(), await redisClient()]
  const apps = [fastifyApp('f1', counters, { ...base, store: new RedisStore(c1, { keyPrefix: 'fa:' }) }), fastifyApp('f2', counters, { ...base, store: new RedisStore(c2, { keyPrefix: 'fa:' }) })]
  const urls = await Promise.all(apps.map((a) => a.listen({ port: 0, host: '127.0.0.1' })))
  t.teardown(() => Promise.all(apps.map((a) => a.close())))
  httpConformance(t, () => ({ urls, orders: async () => counters.orders, bigs: async () => counters.bigs, records: async () => (await allKeys(c1, 'fa:idem:*')).length }))
})

t.test('node:http wrapper with the in-memory store', async (t) => {
  const counters = { orders: 0, bigs: 0 }
  const store = new MemoryStore()
  const server = nodeApp('n1', counters, { ...base, store })
  const url = await listen(server)
  t.teardown(async () => { server.closeAllConnections(); server.close(); await store.close() })
  httpConformance(t, () => ({ urls: [url], orders: async () => counters.orders, bigs: async () => counters.bigs, records: async () => store.size }))
})

t.test('Redis down: the middleware answers 503 and the handler never runs', async (t) => {
  const redis = await startRedis({ useEnv: false })
  const client = await connectRedis(redis.url)
  const counters = { orders: 0, bigs: 0 }
  const server = expressApp('down', counters, { ...base, store: new RedisStore(client) })
  const url = await listen(server)
  t.teardown(async () => { server.closeAllConnections(); server.close(); client.disconnect(); await redis.close() })
  await redis.stop()
  const r = await fetch(`${url}/orders`, { method: 'POST', headers: { 'content-type': 'application/json', 'idempotency-key': 'k1' }, body: '{}' })
  t.equal(r.status, 503)
  t.equal(r.headers.get('retry-after'), '1')
  t.equal(counters.orders, 0)
})

t.test('middleware: a handler that answers 503 or 429 releases the key; a 500 is stored', async (t) => {
  let runs = 0
  const server = http.createServer(withIdempotency((req, res) => {
    runs++
    const status = Number(req.headers['x-demo-status'] ?? 201)
    res.writeHead(status, { 'content-type': 'application/json', 'retry-after': '1' })
    res.end(JSON.stringify({ run: runs }))
  }, { routes, store: new MemoryStore() }))
  const url = await listen(server)
  t.teardown(() => server.close())
  const post = async (key: string, status?: number): Promise<{ status: number, body: string, replayed: string | null }> => {
    const r = await fetch(`${url}/orders`, { method: 'POST', headers: { 'idempotency-key': key, 'content-type': 'application/json', ...(status ? { 'x-demo-status': String(status) } : {}) }, body: '{}' })
    return { status: r.status, body: await r.text(), replayed: r.headers.get('idempotent-replayed') }
  }
  for (const status of [429, 503]) {
    const key = randomUUID()
    t.equal((await post(key, status)).status, status)
    const retry = await post(key)
    t.equal(retry.status, 201, `after a ${status} the retry executes`)
    t.equal(retry.replayed, null)
    t.equal((await post(key)).replayed, 'true', 'and then replays')
  }
  const key = randomUUID()
  const failed = await post(key, 500)
  const again = await post(key)
  t.equal(again.status, 500, 'a 500 is stored')
  t.equal(again.body, failed.body)
  t.equal(again.replayed, 'true')
  t.equal(runs, 5, 'handler runs: two refusals, two retries, one 500')
})

t.test('middleware: a client that leaves mid-handler leaves outcome-unknown; with upstreamDedupes the retry runs the handler again with the same req.idempotency.id', async (t) => {
  const seen: Array<{ id: string, fence: number, key: string }> = []
  let hold = true
  const server = http.createServer(withIdempotency((req, res) => {
    seen.push(req.idempotency!)
    if (hold) return // never answers: the client gives up
    res.writeHead(201, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ id: req.idempotency!.id }))
  }, { store: new MemoryStore(), routes: [{ match: 'POST /orders', required: true, upstreamDedupes: true }, { match: 'POST /plain', required: true }] }))
  const url = await listen(server)
  t.teardown(() => { server.closeAllConnections(); server.close() })
  const post = async (path: string, key: string, signal?: AbortSignal): Promise<Response> => fetch(`${url}${path}`, { method: 'POST', headers: { 'idempotency-key': key, 'content-type': 'application/json' }, body: '{}', ...(signal ? { signal } : {}) })
  for (const path of ['/orders', '/plain']) {
    const key = randomUUID()
    const before = seen.length
    const ac = new AbortController()
    const first = post(path, key, ac.signal).catch(() => undefined)
    for (let i = 0; i < 200 && seen.length === before; i++) await sleep(10) // the handler got it
    ac.abort()
    await first
    hold = false
    // until the server saw the client leave, the record is in flight (409): paced by that, not a clock
    let retry = await post(path, key)
    for (let i = 0; i < 100 && retry.status === 409 && retry.headers.get('retry-after') !== null; i++) {
      await sleep(20)
      retry = await post(path, key)
    }
    if (path === '/orders') {
      t.equal(retry.status, 201, 'upstreamDedupes: the handler runs again')
      t.equal(seen.length, before + 2)
      t.equal(seen[before + 1]!.id, seen[before]!.id, 'with the same id, so it can dedupe')
      t.equal(seen[before]!.key, key, 'and the client\'s key')
      t.ok(seen[before + 1]!.fence > seen[before]!.fence, 'and a higher fence')
      t.equal((await post(path, key)).headers.get('idempotent-replayed'), 'true', 'then replays')
    } else {
      t.equal(retry.status, 409, 'without it: outcome-unknown, never a silent second run')
      t.equal(((await retry.json()) as { type: string }).type, 'urn:claylb:problem:outcome-unknown')
      t.equal(seen.length, before + 1, 'the handler ran once')
    }
    hold = true
  }
})
