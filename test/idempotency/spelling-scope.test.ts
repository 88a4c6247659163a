/**
 * One route, however it is spelled; one scope, however the token is refreshed. The proxy in front of
 * a real Express upstream (which routes `/ORDERS`, `//orders`, `/orders/` … to its `/orders`), and
 * the Express and Fastify middleware, all on a real Redis.
 */
import http, { type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import express from 'express'
import Fastify from 'fastify'
import { request } from 'undici'
import { idempotencyMiddleware, idempotencyPlugin, RedisStore } from '../../src/index.js'
import { fingerprintTarget, normalisePath } from '../../src/shared/idempotency/route-path.js'
import { RouteTable } from '../../src/shared/idempotency/routes.js'
import { ScopeSources } from '../../src/shared/idempotency/scope.js'
import { startClaylb } from '../helpers/claylb.js'
import { connectRedis } from '../helpers/ioredis.js'
import { startRedis } from '../helpers/redis.js'
import { newKey } from './http-conformance.js'

/** spellings every common router reads as `/orders` */
const SPELLINGS = ['/ORDERS', '/Orders', '//orders', '/orders/', '/%6Frders', '/%6frders', '/orders;x=1', '/./orders', '/x/../orders', '/%2e/orders', '/orders//']
/** spellings that cannot be normalised safely */
const UNSAFE = ['/orders%2Fx', '/orders%2fx', '/%00orders', '/orders%5Cx', '/orders%2', '/orders%zz']

t.test('normalisePath', async (t) => {
  for (const s of SPELLINGS) t.equal(normalisePath(s)?.toLowerCase(), '/orders', s)
  for (const s of UNSAFE) t.equal(normalisePath(s), null, s)
  t.equal(normalisePath('/orders?x=/../y'), '/orders', 'the query is not the path')
  t.equal(normalisePath('/a/%C3%a9'), '/a/%C3%A9', 'other escapes kept, hex upper-cased')
  t.equal(normalisePath('/../../orders'), '/orders', 'no climbing above the root')
  t.equal(normalisePath('/orders'), '/orders')
  t.equal(normalisePath('*'), '*')
  const table = new RouteTable([{ match: 'POST /orders', required: true }, { match: 'POST /Pay', caseSensitive: true }])
  for (const s of SPELLINGS) t.equal(table.match('POST', s)?.match, 'POST /orders', `matched: ${s}`)
  t.equal(table.match('POST', '/ordersx'), undefined, 'a prefix is a whole segment')
  t.equal(table.match('POST', '/Pay/1')?.match, 'POST /Pay')
  t.equal(table.match('POST', '/pay/1'), undefined, 'caseSensitive: another spelling of case is another route')
  t.equal(table.match('POST', '/orders%2Fx')?.unsafePath, true, 'unsafe on a keyed method')
  t.equal(table.match('GET', '/orders%2Fx'), undefined, 'other methods are not looked at')
})

t.test('scope: the first configured header present; a refreshed token keeps the account\'s keys', async (t) => {
  const s = new ScopeSources(['x-account-id', 'authorization', 'cookie:sid'])
  t.equal(s.credentialOf(['X-Account-Id', 'acct-1', 'Authorization', 'Bearer a']), 'x-account-id:acct-1')
  t.equal(s.credentialOf(['X-Account-Id', 'acct-1', 'Authorization', 'Bearer b']), 'x-account-id:acct-1')
  t.equal(s.credentialOf(['Authorization', 'Bearer a', 'Cookie', 'sid=s1']), 'authorization:Bearer a')
  t.equal(s.credentialOf(['Cookie', 'a=1; sid=s1']), 'cookie:sid:s1')
  t.equal(s.credentialOf(['Cookie', 'a=1', 'Cookie', 'sid=s2']), 'cookie:sid:s2', 'split cookie headers')
  t.equal(s.credentialOf(['Cookie', 'a=1']), '', 'none present')
})

async function listen (server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

/** an Express app whose `/orders` counts executions (Express routes case-insensitively, like most) */
function expressOrders (counter: { n: number }, use?: express.RequestHandler): Server {
  const app = express()
  app.use(express.json())
  if (use) app.use(use)
  app.post('/orders', (req, res) => {
    counter.n++
    res.status(201).json({ n: counter.n, idempotency: (req as unknown as { idempotency?: unknown }).idempotency ?? null, id: req.headers['claylb-idempotency-id'] ?? null })
  })
  return http.createServer(app)
}

async function post (url: string, path: string, headers: Record<string, string>, body = '{"amount":10}'): Promise<{ status: number, type: string, replayed: boolean, body: string }> {
  const r = await request(url + path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body })
  const text = await r.body.text()
  let type = ''
  if (r.statusCode >= 400) try { type = String((JSON.parse(text) as { type?: unknown }).type) } catch { type = '(not json)' }
  return { status: r.statusCode, type, replayed: r.headers['idempotent-replayed'] === 'true', body: text }
}

/** The cases of the issue, against any target with a required `POST /orders`. */
function spellingCases (t: Test, url: () => string, executed: () => number, strict: boolean): void {
  t.test('no spelling reaches the handler without a key', async (t) => {
    const before = executed()
    for (const s of SPELLINGS) {
      const r = await post(url(), s, {})
      if (strict) t.equal(r.type, 'urn:claylb:problem:idempotency-key-missing', `${s}: 400 key missing`)
      else t.ok(r.status >= 400, `${s}: refused (${r.status} ${r.type})`)
    }
    t.equal(executed(), before, 'nothing executed')
  })
  t.test('one key over many spellings executes once: the spelling as sent replays, another is 422', async (t) => {
    const before = executed()
    const key = newKey()
    const answers = []
    for (const s of ['/orders', ...SPELLINGS, '/orders', '/%6Frders']) answers.push({ s, ...await post(url(), s, { 'idempotency-key': key }) })
    t.equal(executed(), before + 1, 'one execution')
    const first = answers[0]!
    for (const a of answers.slice(1)) {
      // only escapes of unreserved characters are the same target to the fingerprint (issue 24 case 3);
      // the HTTP client itself resolves dot segments (`/x/../orders` is sent as `/orders`)
      if (fingerprintTarget(new URL(a.s, 'http://x').pathname) === '/orders') t.ok(a.replayed && a.body === first.body, `${a.s}: the replay`)
      else if (strict) t.equal(a.type, 'urn:claylb:problem:idempotency-key-mismatch', `${a.s}: 422, not executed`)
      else t.ok(a.status >= 400, `${a.s}: refused (${a.status} ${a.type})`)
    }
  })
  t.test('a path that cannot be normalised is refused on a keyed method, never forwarded unkeyed', async (t) => {
    const before = executed()
    for (const s of UNSAFE) {
      for (const headers of [{}, { 'idempotency-key': newKey() }] as Array<Record<string, string>>) {
        const r = await post(url(), s, headers)
        if (strict) t.equal(r.type, 'urn:claylb:problem:path-not-normalisable', `${s}: 400`)
        else t.ok(r.status >= 400, `${s}: refused (${r.status} ${r.type})`)
      }
    }
    t.equal(executed(), before, 'nothing executed')
  })
  t.test('big integers and duplicate members', async (t) => {
    const before = executed()
    const key = newKey()
    const a = await post(url(), '/orders', { 'idempotency-key': key }, '{"to":1234567890123456789}')
    t.equal(a.status, 201)
    const b = await post(url(), '/orders', { 'idempotency-key': key }, '{"to":1234567890123456790}')
    t.equal(b.type, 'urn:claylb:problem:idempotency-key-mismatch', 'a neighbour past 2^53 is another request')
    const c = await post(url(), '/orders', { 'idempotency-key': key }, '{ "to" : 1234567890123456789.0 }')
    t.ok(c.replayed, 'the same value spelled otherwise replays')
    const d = await post(url(), '/orders', { 'idempotency-key': newKey() }, '{"amount":1,"amount":999}')
    t.equal(d.type, 'urn:claylb:problem:invalid-json', 'duplicate members: 400 invalid-json')
    t.equal(executed(), before + 1)
  })
}

t.test('proxy in front of an Express upstream', async (t) => {
  const redis = await startRedis({ useEnv: false })
  t.teardown(() => redis.close())
  const counter = { n: 0 }
  const upstream = expressOrders(counter)
  const upstreamUrl = await listen(upstream)
  t.teardown(() => { upstream.closeAllConnections(); upstream.close() })
  const lb = await startClaylb({
    config: {
      upstreams: [{ url: upstreamUrl }],
      redis: { url: redis.url, commandTimeoutMs: 3000 },
      idempotency: { routes: [{ match: 'POST /orders', required: true }], scope: ['x-account-id', 'authorization'] },
      log: { access: true },
    },
  })
  t.teardown(() => lb.stop())
  spellingCases(t, () => lb.url, () => counter.n, true)

  t.test('scope: [x-account-id, authorization]: a refreshed token on one account keeps its key; accounts stay apart', async (t) => {
    const before = counter.n
    const key = newKey()
    const a = await post(lb.url, '/orders', { 'idempotency-key': key, 'x-account-id': 'acct-1', authorization: 'Bearer old' })
    const b = await post(lb.url, '/orders', { 'idempotency-key': key, 'x-account-id': 'acct-1', authorization: 'Bearer refreshed' })
    t.equal(a.status, 201)
    t.ok(b.replayed, 'the retry with a refreshed token replays')
    const c = await post(lb.url, '/orders', { 'idempotency-key': key, 'x-account-id': 'acct-2', authorization: 'Bearer refreshed' })
    t.notOk(c.replayed, 'another account with the same key is another record')
    t.equal(counter.n, before + 2)
    t.match(JSON.parse(a.body).id, /^[0-9a-f]{64}$/, 'the upstream got claylb-idempotency-id')
  })

  t.test('honest signals: replays and claylb\'s own answers are counted and timed; the access log marks replays', async (t) => {
    const metric = async (series: string): Promise<number> => {
      const text = (await request(`${lb.admin}/metrics`).then((r) => r.body.text()))
      let sum = 0
      for (const line of text.split('\n')) if (line.startsWith(series)) sum += Number(line.slice(line.lastIndexOf(' ') + 1))
      return sum
    }
    const total = (cls: string): Promise<number> => metric(`claylb_requests_total{upstream="none",code_class="${cls}"}`)
    const timed = (): Promise<number> => metric('claylb_request_duration_seconds_count{upstream="none"}')
    const before = { replays: await total('2xx'), missing: await total('4xx'), timed: await timed() }
    const key = newKey()
    await post(lb.url, '/orders', { 'idempotency-key': key })
    await post(lb.url, '/orders', { 'idempotency-key': key })
    await post(lb.url, '/orders', {})
    t.equal(await total('2xx'), before.replays + 1, 'the replay is in claylb_requests_total')
    t.equal(await total('4xx'), before.missing + 1, 'the 400 too')
    t.equal(await timed(), before.timed + 2, 'both in the duration histogram')
    const invalid = await metric('claylb_idempotency_requests_total{outcome="request_invalid"}')
    t.equal(invalid, UNSAFE.length * 2 + 1, `the unsafe paths and the duplicate members were counted as request_invalid (${invalid})`)
    const log = await lb.waitForLog((l) => l['msg'] === 'request' && l['replayed'] === true)
    t.equal(log['status'], 201)
    t.equal(typeof log['ms'], 'number', 'timed')
  })
})

t.test('Express middleware', async (t) => {
  const redis = await startRedis({ useEnv: false })
  const client = await connectRedis(redis.url)
  t.teardown(async () => { client.disconnect(); await redis.close() })
  const counter = { n: 0 }
  const server = expressOrders(counter, idempotencyMiddleware({ store: new RedisStore(client, { keyPrefix: 'sx:' }), routes: [{ match: 'POST /orders', required: true }] }) as unknown as express.RequestHandler)
  const url = await listen(server)
  t.teardown(() => { server.closeAllConnections(); server.close() })
  t.test('the handler gets req.idempotency', async (t) => {
    const r = await post(url, '/orders', { 'idempotency-key': newKey() })
    const idem = JSON.parse(r.body).idempotency as { id: string, fence: number, key: string }
    t.match(idem.id, /^[0-9a-f]{64}$/)
    t.equal(idem.fence, 1)
  })
  // express.json() parses the body before the middleware: exact numbers need the raw bytes
  const rawServer = http.createServer(express()
    .use(express.json({ verify: (req, _res, buf) => { (req as unknown as { rawBody: Buffer }).rawBody = buf } }))
    .use(idempotencyMiddleware({ store: new RedisStore(client, { keyPrefix: 'sx2:' }), routes: [{ match: 'POST /orders', required: true }] }) as unknown as express.RequestHandler)
    .post('/orders', (_req, res) => { counter.n++; res.status(201).json({ n: counter.n }) }))
  const rawUrl = await listen(rawServer)
  t.teardown(() => { rawServer.closeAllConnections(); rawServer.close() })
  spellingCases(t, () => rawUrl, () => counter.n, true)
})

t.test('Fastify plugin', async (t) => {
  const redis = await startRedis({ useEnv: false })
  const client = await connectRedis(redis.url)
  t.teardown(async () => { client.disconnect(); await redis.close() })
  const counter = { n: 0 }
  // routes case-insensitively and without the trailing slash, as the routers do
  const app = Fastify({ routerOptions: { caseSensitive: false, ignoreTrailingSlash: true, ignoreDuplicateSlashes: true } } as Record<string, unknown>)
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, body, done) => {
    // keep the bytes for an exact fingerprint (as the fastify-raw-body plugin does)
    (req as unknown as { rawBody: Buffer }).rawBody = body as Buffer
    try { done(null, JSON.parse((body as Buffer).toString())) } catch (err) { done(err as Error) }
  })
  app.register(idempotencyPlugin, { store: new RedisStore(client, { keyPrefix: 'sf:' }), routes: [{ match: 'POST /orders', required: true }] })
  app.post('/orders', async (req, reply) => {
    counter.n++
    return reply.code(201).send({ n: counter.n, idempotency: (req as unknown as { idempotency?: unknown }).idempotency })
  })
  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  // Fastify answers 404 to some spellings before any hook: refused either way, never executed unkeyed
  spellingCases(t, () => url, () => counter.n, false)
})
