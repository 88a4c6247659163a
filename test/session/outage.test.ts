import t, { type Test } from 'tap'
import { startRedis } from '../helpers/redis.js'
import { startSessionApp, sidOf, call } from '../helpers/session-app.js'
import { buildConfig } from '../../src/shared/config/load.js'
import { createRedis, closeRedis, waitReady } from '../../src/shared/redis/index.js'
import { sleep } from '../helpers/http.js'

const COMMAND_TIMEOUT_MS = 500

/** a private redis-server, a session app on it, and one session holding { keep: 'me' } */
async function setup (t: Test) {
  const server = await startRedis({ useEnv: false })
  t.teardown(() => server.close())
  const redis = createRedis(buildConfig({ redis: { url: server.url, commandTimeoutMs: COMMAND_TIMEOUT_MS } }, {}, {}).redis, 'app')
  t.teardown(() => closeRedis(redis))
  await waitReady(redis, 5000)
  const app = await startSessionApp({ redis })
  t.teardown(() => app.close())
  const c = sidOf(await call(app.url, 'PUT', '/field/keep?value=me'))!
  return { server, redis, app, c }
}

/** poll until the session loads again (the client reconnects by itself) */
async function waitBack (url: string, cookie: string) {
  const until = Date.now() + 10_000
  let back
  do {
    await sleep(100)
    back = await call(url, 'GET', '/session', cookie)
  } while (back.status !== 200 && Date.now() < until)
  return back
}

t.test('Redis down: 503 problem+json within the timeout, never an empty session; back without a restart', async (t) => {
  const { server, app, c } = await setup(t)

  // the save before the response starts fails: the app's 200 becomes a 503
  const saving = call(app.url, 'PUT', '/field/x?value=1&delayMs=300', c)
  await sleep(100)
  await server.stop()
  const failedSave = await saving
  t.equal(failedSave.status, 503, 'a failed save is a 503, not the app\'s 200')
  t.equal(failedSave.headers['content-type'], 'application/problem+json')
  t.equal(sidOf(failedSave), undefined, 'and sets no cookie')

  for (const [method, path] of [['GET', '/session'], ['POST', '/counter'], ['PUT', '/field/y?value=1']] as const) {
    const began = Date.now()
    const r = await call(app.url, method, path, c)
    const took = Date.now() - began
    t.equal(r.status, 503, `${method} ${path}: 503`)
    t.match(r.data, { type: 'urn:claylb:problem:state-unavailable', status: 503 })
    t.equal(r.headers['retry-after'], '1')
    t.ok(took < COMMAND_TIMEOUT_MS + 1500, `answered in ${took} ms (command timeout ${COMMAND_TIMEOUT_MS} ms)`)
  }
  const fresh = await call(app.url, 'POST', '/counter')
  t.equal(fresh.status, 503, 'even without a cookie, no session is faked')
  t.equal((await call(app.url, 'GET', '/plain')).status, 200, 'routes without a session keep answering')

  await server.start()
  const back = await waitBack(app.url, c)
  t.equal(back.status, 200, 'works again after Redis restarted, without restarting the app')
  t.equal((await call(app.url, 'PUT', '/field/z?value=1', c)).status, 200)
})

t.test('Redis hung (SIGSTOP, no RST): 503 within the command timeout, then back on SIGCONT', async (t) => {
  const { server, redis, app, c } = await setup(t)
  const pid = Number(/process_id:(\d+)/.exec(String(await redis.info('server')))![1])

  process.kill(pid, 'SIGSTOP')
  t.teardown(() => { try { process.kill(pid, 'SIGCONT') } catch {} })
  for (const [method, path] of [['GET', '/session'], ['POST', '/counter']] as const) {
    const began = Date.now()
    const r = await call(app.url, method, path, c)
    const took = Date.now() - began
    t.equal(r.status, 503, `${method} ${path}: 503`)
    t.ok(took >= COMMAND_TIMEOUT_MS - 50 && took < COMMAND_TIMEOUT_MS + 1500, `answered in ${took} ms (command timeout ${COMMAND_TIMEOUT_MS} ms)`)
  }
  t.equal((await call(app.url, 'GET', '/plain')).status, 200, 'routes without a session keep answering')
  process.kill(pid, 'SIGCONT')
  const back = await waitBack(app.url, c)
  t.equal(back.status, 200)
  t.same(back.data, { keep: 'me' }, 'the data is still there')
})
