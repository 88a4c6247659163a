import t from 'tap'
import { spawnSync } from 'node:child_process'
import { BIN, childEnv, startClaylb, writeConfig } from '../helpers/claylb.js'
import { freePort, startRedis } from '../helpers/redis.js'
import { json, req, sleep } from '../helpers/http.js'
import { startBackend } from '../helpers/backend.js'

// A config that needs Redis without needing workers: an idempotency route in front of a (dead) upstream.
const needsRedis = { workers: { count: 0 }, upstreams: [{ url: 'http://127.0.0.1:9' }], idempotency: { routes: [{ match: 'POST /orders' }] } }

const alive = (pid: number): boolean => { try { process.kill(pid, 0); return true } catch { return false } }
async function waitGone (pid: number, ms = 5000): Promise<boolean> {
  const until = Date.now() + ms
  while (alive(pid)) { if (Date.now() > until) return false; await sleep(50) }
  return true
}

t.test('no Redis named: a private ephemeral redis-server, logged at warn, never what answers on the old default', async (t) => {
  // a Redis answering where the old implicit default was (CLAYLB_DEFAULT_REDIS_URL moved that default
  // off 6379 for tests): another tenant's, say. It must not be used
  const tenant = await startRedis({ useEnv: false })
  t.teardown(() => tenant.close())
  const lb = await startClaylb({ config: needsRedis, env: { REDIS_URL: '', CLAYLB_DEFAULT_REDIS_URL: tenant.url } })
  t.notOk(lb.logs.find((l) => l['msg'] === 'state tier reachable'), 'the Redis at the old default is not used')
  const line = lb.logs.find((l) => /private ephemeral redis-server/.test(String(l['msg'])))
  t.ok(line, 'logged that it started one')
  t.equal(line?.['level'], 40, 'at warn: not a Redis anyone configured')
  const url = String(line?.['redis'])
  t.not(url, tenant.url, 'on another (free) port')
  const pid = Number(line?.['pid'])
  t.ok(alive(pid), 'the embedded redis-server runs')
  const ping = spawnSync('redis-cli', ['-u', url, 'ping'], { encoding: 'utf8' })
  t.equal(ping.stdout.trim(), 'PONG')
  const cfg = spawnSync('redis-cli', ['-u', url, 'config', 'get', 'save'], { encoding: 'utf8' })
  t.match(cfg.stdout, /save\n\n?$/, 'no persistence')
  t.equal(await lb.stop('SIGTERM'), 0)
  t.ok(await waitGone(pid), 'stopped with claylb')
  const clients = spawnSync('redis-cli', ['-u', tenant.url, 'client', 'list'], { encoding: 'utf8' })
  t.notMatch(clients.stdout, /name=claylb/, 'nothing of claylb ever connected to it')
})

t.test('the embedded redis-server does not outlive a SIGKILLed claylb', async (t) => {
  const defaultUrl = `redis://127.0.0.1:${await freePort()}`
  const lb = await startClaylb({ config: needsRedis, env: { REDIS_URL: '', CLAYLB_DEFAULT_REDIS_URL: defaultUrl } })
  const pid = Number(lb.logs.find((l) => /private ephemeral/.test(String(l['msg'])))?.['pid'])
  t.ok(alive(pid))
  await lb.stop('SIGKILL')
  t.ok(await waitGone(pid), 'reaped by its watchdog')
})

t.test('Redis down at start: claylb starts, stateless routes serve, keyed ones 503 state-unavailable, /readyz names it, and it recovers', async (t) => {
  const backend = await startBackend()
  t.teardown(() => backend.close())
  const redis = await startRedis({ useEnv: false })
  t.teardown(() => redis.close())
  await redis.stop()
  const lb = await startClaylb({ config: { ...needsRedis, upstreams: [{ url: backend.url }] }, env: { REDIS_URL: redis.url } })
  t.teardown(() => lb.stop('SIGKILL'))
  const warned = lb.logs.find((l) => /Redis not reachable at/.test(String(l['msg'])))
  t.equal(warned?.['level'], 40, 'the outage is logged at warn, naming the URL')
  t.match(String(warned?.['msg']), 'REDIS_URL', 'and where it came from')
  t.equal((await req(`${lb.url}/plain`)).status, 200, 'a route that needs no state serves')
  const keyed = (): Promise<Awaited<ReturnType<typeof req>>> => req(`${lb.url}/orders`, { method: 'POST', headers: { 'idempotency-key': `k-${Math.random()}`, 'content-type': 'application/json' }, body: '{}' })
  const refused = await keyed()
  t.equal(refused.status, 503)
  t.match(JSON.parse(refused.body), { type: /state-unavailable$/ }, 'problem state-unavailable')
  const ready = await json<{ ready: boolean, missing: string[] }>(`${lb.admin}/readyz`)
  t.same([ready._status, ready.missing], [200, ['redis']], '/readyz names the missing dependency (and stays 200: stateless routes serve)')

  await redis.start()
  let status = 0
  for (let i = 0; i < 200 && status !== 200; i++) {
    status = (await keyed()).status
    if (status !== 200) await sleep(50)
  }
  t.equal(status, 200, 'keyed routes serve once Redis is there, without a restart')
  let back: string[] = ['redis']
  for (let i = 0; i < 100 && back.length > 0; i++) {
    back = (await json<{ missing: string[] }>(`${lb.admin}/readyz`)).missing
    if (back.length > 0) await sleep(50)
  }
  t.same(back, [], '/readyz: nothing missing')
  t.ok(lb.logs.find((l) => l['msg'] === 'state tier reachable again'), 'the return is logged')
})

t.test('a reachable Redis is used as it is; a pure drop-in proxy never touches Redis', async (t) => {
  const redis = await startRedis({ useEnv: false })
  t.teardown(() => redis.close())
  const lb = await startClaylb({ config: needsRedis, env: { REDIS_URL: redis.url } })
  t.ok(lb.logs.find((l) => l['msg'] === 'state tier reachable'))
  t.notOk(lb.logs.find((l) => /ephemeral/.test(String(l['msg']))))
  t.equal(await lb.stop(), 0)

  const dead = `redis://127.0.0.1:${await freePort()}`
  const proxy = await startClaylb({ config: { upstreams: [{ url: 'http://127.0.0.1:9' }] }, env: { REDIS_URL: dead } })
  t.equal((await req(`${proxy.url}/`)).status, 502, 'proxying (to a dead upstream) without Redis')
  t.notOk(proxy.logs.find((l) => /redis|state tier/i.test(String(l['msg']))), 'no Redis involved')
  t.equal(await proxy.stop(), 0)
})

t.test('session secrets at start: a short SESSION_SECRET is refused, a good one is used without a warning', async (t) => {
  const redis = await startRedis({ useEnv: false })
  t.teardown(() => redis.close())
  const r = spawnSync(process.execPath, [BIN, 'start', '--port', '0', '--admin-port', '0', '--config', writeConfig(needsRedis)],
    { encoding: 'utf8', timeout: 90_000, env: childEnv({ REDIS_URL: redis.url, SESSION_SECRET: 'x'.repeat(40) + ',short' }) })
  t.equal(r.status, 1)
  t.match(r.stderr, 'SESSION_SECRET: secret #2 is shorter than 32 characters')
  const lb = await startClaylb({ config: needsRedis, env: { REDIS_URL: redis.url, SESSION_SECRET: 'y'.repeat(40) } })
  t.notOk(lb.logs.some((l) => /SESSION_SECRET/.test(String(l['msg']))), 'no warning')
  t.equal(await lb.stop(), 0)
})

t.test('Redis down at start with the demo workers: they start, session routes 503 state-unavailable, the rest serves, and it recovers', async (t) => {
  const redis = await startRedis({ useEnv: false })
  t.teardown(() => redis.close())
  await redis.stop()
  const lb = await startClaylb({ args: ['--workers', '1'], env: { REDIS_URL: redis.url, SESSION_SECRET: 'x'.repeat(32) } })
  t.teardown(() => lb.stop('SIGKILL'))
  t.equal((await req(`${lb.url}/`)).status, 200, 'a stateless route serves')
  const refused = await req(`${lb.url}/session/counter`, { method: 'POST' })
  t.equal(refused.status, 503)
  t.match(JSON.parse(refused.body), { type: /state-unavailable$/ }, 'problem state-unavailable')
  t.same((await json<{ missing: string[] }>(`${lb.admin}/readyz`)).missing, ['redis'])
  await redis.start()
  let status = 0
  for (let i = 0; i < 200 && status !== 200; i++) {
    status = (await req(`${lb.url}/session/counter`, { method: 'POST' })).status
    if (status !== 200) await sleep(50)
  }
  t.equal(status, 200, 'sessions serve once Redis is there, without a restart')
})
