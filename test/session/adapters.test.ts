import t, { type Test } from 'tap'
import express from 'express'
import Fastify from 'fastify'
import type { AddressInfo } from 'node:net'
import { startRedis } from '../helpers/redis.js'
import { buildConfig } from '../../src/shared/config/load.js'
import { createRedis, closeRedis, waitReady } from '../../src/shared/redis/index.js'
import { createSessionStore, expressSession, fastifySession, type Session } from '../../src/app-side/session/index.js'
import { SECRET, sidOf, call } from '../helpers/session-app.js'

const server = await startRedis({ useEnv: false })
t.teardown(() => server.close())
const redis = createRedis(buildConfig({ redis: { url: server.url } }, {}, {}).redis, 'app')
t.teardown(() => closeRedis(redis))
await waitReady(redis, 5000)
const store = createSessionStore({ redis, secrets: [SECRET], keyPrefix: 'adapters:' })

async function exercise (t: Test, url: string): Promise<string> {
  const first = await call(url, 'POST', '/counter')
  t.equal(first.data['count'], 1)
  const c = sidOf(first)!
  t.ok(c, 'cookie set, alongside the app\'s own cookie')
  t.match(String(first.headers['set-cookie']), /theme=dark/)
  const replies = await Promise.all(Array.from({ length: 20 }, () => call(url, 'POST', '/counter', c)))
  t.same(replies.map((r) => r.status).filter((s) => s !== 200), [])
  const login = await call(url, 'POST', '/login', c)
  const fresh = sidOf(login)!
  t.ok(fresh && fresh !== c, 'regenerated')
  t.same((await call(url, 'GET', '/session', fresh)).data, { count: 21, user: 'ada' })
  t.same((await call(url, 'GET', '/session', c)).data, {}, 'old id is dead')
  const stale = await call(url, 'POST', '/counter', c)
  t.equal(stale.status, 409, 'a counter on the old cookie is refused (SessionEndedError through the framework)')
  t.equal(sidOf(stale), undefined, 'and sets no session cookie: the login stands')
  t.same((await call(url, 'GET', '/session', fresh)).data, { count: 21, user: 'ada' }, 'nothing changed')
  return fresh
}

t.test('Express', async (t) => {
  const app = express()
  app.use(expressSession(store))
  const s = (req: express.Request): Session => (req as unknown as { session: Session }).session
  app.post('/counter', async (req, res) => { res.cookie('theme', 'dark'); res.json({ count: await s(req).increment('count') }) })
  app.post('/login', async (req, res) => { await s(req).regenerate(); s(req).set('user', 'ada'); res.json(s(req)) })
  app.get('/session', (req, res) => { res.json(s(req)) })
  const listener = app.listen(0, '127.0.0.1')
  await new Promise((resolve) => listener.once('listening', resolve))
  t.teardown(() => { listener.closeAllConnections(); listener.close() })
  const url = `http://127.0.0.1:${(listener.address() as AddressInfo).port}`
  const cookie = await exercise(t, url)

  await server.stop()
  const down = await call(url, 'GET', '/session', cookie)
  t.equal(down.status, 503, 'Redis down: 503 before any handler')
  t.equal(down.headers['content-type'], 'application/problem+json')
  await server.start()
  await waitReady(redis, 5000)
})

t.test('Fastify', async (t) => {
  const app = Fastify()
  await app.register(fastifySession(store))
  const s = (req: unknown): Session => (req as { session: Session }).session
  app.post('/counter', async (req, reply) => { reply.header('set-cookie', 'theme=dark'); return { count: await s(req).increment('count') } })
  app.post('/login', async (req) => { await s(req).regenerate(); s(req).set('user', 'ada'); return s(req) })
  app.get('/session', async (req) => s(req))
  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const cookie = await exercise(t, url)

  await server.stop()
  const down = await call(url, 'GET', '/session', cookie)
  t.equal(down.status, 503)
  t.equal(down.headers['content-type'], 'application/problem+json')
  await server.start()
})
