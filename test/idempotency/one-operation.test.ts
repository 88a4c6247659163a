/**
 * Issue 24, cases 3, 4, 6 and 7: one key is one operation, and the fingerprint names exactly the
 * request that ran. Two real claylb instances on one real redis-server in front of a real backend
 * that counts every execution, and the Express and Fastify middleware on the same Redis; a retry with one key
 * either replays the answer of the very request that ran, or is refused (422) and never executed.
 */
import http, { type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import express from 'express'
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify'
import { request } from 'undici'
import type { Redis } from 'ioredis'
import { idempotencyMiddleware, idempotencyPlugin, RedisStore } from '../../src/index.js'
import { startClaylb } from '../helpers/claylb.js'
import { connectRedis } from '../helpers/ioredis.js'
import { startRedis } from '../helpers/redis.js'
import { newKey } from './http-conformance.js'

/** the keyed routes of every front here */
const ROUTES = [
  { match: 'POST /orders', required: true },
  { match: 'PATCH /orders' },
  { match: 'POST /payments' },
  { match: 'POST /u' },
]

interface Execution { method: string, url: string, type: string, body: string }

/** A backend that executes (and counts) every non-GET request: 201 with what it executed. */
function countingApp (runs: Execution[]): (req: http.IncomingMessage, res: http.ServerResponse) => void {
  const execute = (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer): void => {
    if (req.method === 'GET') { res.end('{}'); return }
    const run = { method: req.method!, url: req.url!, type: req.headers['content-type'] ?? '', body: body.toString() }
    runs.push(run)
    res.writeHead(201, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ n: runs.length, ...run }))
  }
  return (req, res) => {
    // behind the middleware the body was read already (it is on req.body)
    const read = (req as { body?: unknown }).body
    if (Buffer.isBuffer(read)) { execute(req, res, read); return }
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => execute(req, res, Buffer.concat(chunks)))
  }
}

async function listen (server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

interface Answer { status: number, type: string, replayed: boolean, body: string }

async function send (url: string, method: string, path: string, key: string, body = '{"amount":10}', type = 'application/json'): Promise<Answer> {
  const r = await request(url + path, { method: method as 'POST', headers: { 'content-type': type, 'idempotency-key': key }, body })
  const text = await r.body.text()
  let problem = ''
  if (r.statusCode >= 400) try { problem = String((JSON.parse(text) as { type?: unknown }).type) } catch { problem = '(not json)' }
  return { status: r.statusCode, type: problem, replayed: r.headers['idempotent-replayed'] === 'true', body: text }
}

const MISMATCH = 'urn:claylb:problem:idempotency-key-mismatch'

/** The cases, against front ends `urls` (alternated) and the executions they caused. */
function cases (t: Test, urls: () => readonly string[], runs: Execution[]): void {
  const at = (i: number): string => urls()[i % urls().length]!

  t.test('case 3: case folding never reaches a resource id: ch_abc is not a replay of ch_AbC', async (t) => {
    const before = runs.length
    const key = newKey()
    const a = await send(at(0), 'POST', '/orders/ch_AbC/refund', key)
    t.equal(a.status, 201)
    const b = await send(at(1), 'POST', '/orders/ch_abc/refund', key)
    t.equal(b.status, 422, 'another resource under the same key: 422')
    t.equal(b.type, MISMATCH)
    t.notOk(b.replayed, 'never ch_AbC\'s answer')
    const c = await send(at(0), 'POST', '/orders/%63h_AbC/refund', key)
    t.ok(c.replayed && c.body === a.body, 'the same path with an unreserved character escaped replays')
    t.equal(runs.length, before + 1, 'one execution')
    t.same(runs.slice(before).map((r) => r.url), ['/orders/ch_AbC/refund'])
    const k2 = newKey()
    t.equal((await send(at(1), 'POST', '/ORDERS/x', k2)).status, 201, 'a route spelled in capitals is still keyed…')
    t.equal((await send(at(0), 'POST', '/orders/x', k2)).type, MISMATCH, '…and its retry in another spelling is refused, not run')
    t.equal(runs.length, before + 2)
  })

  t.test('case 4: one key, one operation: another route or method under the key is 422 on any keyed route', async (t) => {
    const before = runs.length
    const key = newKey()
    const first = await send(at(0), 'POST', '/orders', key)
    t.equal(first.status, 201)
    for (const [i, [method, path]] of [['PATCH', '/orders'], ['POST', '/payments'], ['POST', '/orders?x=1'], ['PATCH', '/orders/1']].entries()) {
      const r = await send(at(i + 1), method!, path!, key)
      t.equal(r.status, 422, `${method} ${path}: 422`)
      t.equal(r.type, MISMATCH)
    }
    t.ok((await send(at(1), 'POST', '/orders', key)).replayed, 'the first request still replays')
    t.equal(runs.length, before + 1, 'executed once, not three times')
  })

  t.test('case 7: the content type is part of the fingerprint', async (t) => {
    const before = runs.length
    const key = newKey()
    const form = 'amount=10&to=acct_1'
    const a = await send(at(0), 'POST', '/u', key, form, 'application/x-www-form-urlencoded')
    t.equal(a.status, 201)
    const b = await send(at(1), 'POST', '/u', key, form, 'text/plain')
    t.equal(b.type, MISMATCH, 'the same bytes as text/plain: 422, not the form\'s answer')
    const c = await send(at(1), 'POST', '/u', key, form, 'Application/X-WWW-Form-URLEncoded')
    t.ok(c.replayed && c.body === a.body, 'the media type in other case is the same request')
    const k2 = newKey()
    const d = await send(at(0), 'POST', '/u', k2, 'x', 'text/plain; charset=UTF-8')
    t.equal(d.status, 201)
    t.ok((await send(at(1), 'POST', '/u', k2, 'x', 'text/plain;charset="utf-8"')).replayed, 'charset case and quoting do not count')
    t.equal((await send(at(1), 'POST', '/u', k2, 'x', 'text/plain; charset=iso-8859-1')).type, MISMATCH, 'another charset does')
    t.equal(runs.length, before + 2)
  })
}

t.test('the proxy: two claylb instances, one Redis', async (t) => {
  const redis = await startRedis({ useEnv: false })
  t.teardown(() => redis.close())
  const runs: Execution[] = []
  const backend = http.createServer(countingApp(runs))
  const upstream = await listen(backend)
  t.teardown(() => { backend.closeAllConnections(); backend.close() })
  const config = (routes: unknown[]): Record<string, unknown> => ({
    upstreams: [{ url: upstream }],
    redis: { url: redis.url, commandTimeoutMs: 3000 },
    idempotency: { routes },
    log: { access: false },
  })
  const lbs = await Promise.all([startClaylb({ config: config(ROUTES) }), startClaylb({ config: config(ROUTES) })])
  t.teardown(() => Promise.all(lbs.map((l) => l.stop())))
  cases(t, () => lbs.map((l) => l.url), runs)

  t.test('case 6: two instances configured POST /orders and POST /orders/ share one record', async (t) => {
    const [a, b] = await Promise.all([startClaylb({ config: config([{ match: 'POST /orders' }]) }), startClaylb({ config: config([{ match: 'POST /orders/' }]) })])
    t.teardown(() => Promise.all([a.stop(), b.stop()]))
    const before = runs.length
    const key = newKey()
    const first = await send(a.url, 'POST', '/orders', key)
    t.equal(first.status, 201)
    const retry = await send(b.url, 'POST', '/orders', key)
    t.ok(retry.replayed && retry.body === first.body, 'the retry on the other instance replays')
    t.equal(runs.length, before + 1, 'executed once')
  })

  t.test('case 6: one route spelled twice in one config is refused at load', async (t) => {
    const bad = startClaylb({ config: config([{ match: 'POST /orders' }, { match: 'POST /Orders/', required: true }]) })
    await t.rejects(bad, /idempotency\.routes\[1\]\.match: "POST \/Orders\/" is the route of idempotency\.routes\[0\]/)
  })
})

t.test('the Express middleware: two servers, one Redis', async (t) => {
  const redis = await startRedis({ useEnv: false })
  const clients: Redis[] = await Promise.all([connectRedis(redis.url), connectRedis(redis.url)])
  t.teardown(async () => { for (const c of clients) c.disconnect(); await redis.close() })
  const runs: Execution[] = []
  const servers = clients.map((client) => http.createServer(express()
    .use(idempotencyMiddleware({ store: new RedisStore(client, { keyPrefix: 'one-op:' }), routes: ROUTES }) as unknown as express.RequestHandler)
    .use(countingApp(runs))))
  const urls = await Promise.all(servers.map(listen))
  t.teardown(() => { for (const s of servers) { s.closeAllConnections(); s.close() } })
  cases(t, () => urls, runs)
})

t.test('the Fastify plugin: two instances, one Redis', async (t) => {
  const redis = await startRedis({ useEnv: false })
  const clients: Redis[] = await Promise.all([connectRedis(redis.url), connectRedis(redis.url)])
  t.teardown(async () => { for (const c of clients) c.disconnect(); await redis.close() })
  const runs: Execution[] = []
  const apps = clients.map((client) => {
    const app = Fastify()
    // every body as bytes but JSON, which Fastify parses (fingerprinted by value)
    app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => { done(null, body) })
    app.register(idempotencyPlugin, { store: new RedisStore(client, { keyPrefix: 'one-op-f:' }), routes: ROUTES })
    const execute = async (req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
      const body = Buffer.isBuffer(req.body) ? req.body.toString() : JSON.stringify(req.body)
      runs.push({ method: req.method, url: req.url, type: req.headers['content-type'] ?? '', body })
      return reply.code(201).send({ n: runs.length, url: req.url })
    }
    app.route({ method: ['POST', 'PATCH'], url: '/*', handler: execute })
    return app
  })
  const urls = await Promise.all(apps.map((a) => a.listen({ port: 0, host: '127.0.0.1' })))
  t.teardown(() => Promise.all(apps.map((a) => a.close())))
  cases(t, () => urls, runs)
})