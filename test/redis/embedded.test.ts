import t from 'tap'
import { spawnSync } from 'node:child_process'
import { BIN, childEnv, startClaylb, writeConfig } from '../helpers/claylb.js'
import { freePort, startRedis } from '../helpers/redis.js'
import { req, sleep } from '../helpers/http.js'

// A config that needs Redis without needing workers: an idempotency route in front of a (dead) upstream.
const needsRedis = { workers: { count: 0 }, upstreams: [{ url: 'http://127.0.0.1:9' }], idempotency: { routes: [{ match: 'POST /orders' }] } }

const alive = (pid: number): boolean => { try { process.kill(pid, 0); return true } catch { return false } }
async function waitGone (pid: number, ms = 5000): Promise<boolean> {
  const until = Date.now() + ms
  while (alive(pid)) { if (Date.now() > until) return false; await sleep(50) }
  return true
}

t.test('nothing at the default URL + redis-server on PATH: a private ephemeral redis-server, stopped on exit', async (t) => {
  const defaultUrl = `redis://127.0.0.1:${await freePort()}`
  const lb = await startClaylb({ config: needsRedis, env: { REDIS_URL: '', CLAYLB_DEFAULT_REDIS_URL: defaultUrl } })
  const line = lb.logs.find((l) => /private ephemeral redis-server/.test(String(l['msg'])))
  t.ok(line, 'logged that it started one')
  const url = String(line?.['redis'])
  t.not(url, defaultUrl, 'on another (free) port')
  const pid = Number(line?.['pid'])
  t.ok(alive(pid), 'the embedded redis-server runs')
  const ping = spawnSync('redis-cli', ['-u', url, 'ping'], { encoding: 'utf8' })
  t.equal(ping.stdout.trim(), 'PONG')
  const cfg = spawnSync('redis-cli', ['-u', url, 'config', 'get', 'save'], { encoding: 'utf8' })
  t.match(cfg.stdout, /save\n\n?$/, 'no persistence')
  t.equal(await lb.stop('SIGTERM'), 0)
  t.ok(await waitGone(pid), 'stopped with claylb')
})

t.test('the embedded redis-server does not outlive a SIGKILLed claylb', async (t) => {
  const defaultUrl = `redis://127.0.0.1:${await freePort()}`
  const lb = await startClaylb({ config: needsRedis, env: { REDIS_URL: '', CLAYLB_DEFAULT_REDIS_URL: defaultUrl } })
  const pid = Number(lb.logs.find((l) => /private ephemeral/.test(String(l['msg'])))?.['pid'])
  t.ok(alive(pid))
  await lb.stop('SIGKILL')
  t.ok(await waitGone(pid), 'reaped by its watchdog')
})

t.test('an unreachable non-default Redis is a clear start-up error naming the URL and REDIS_URL', async (t) => {
  const url = `redis://127.0.0.1:${await freePort()}`
  const r = spawnSync(process.execPath, [BIN, 'start', '--port', '0', '--admin-port', '0', '--config', writeConfig(needsRedis), '--redis', url],
    { encoding: 'utf8', timeout: 90_000, env: childEnv({ REDIS_URL: '' }) })
  t.equal(r.status, 1)
  t.match(r.stderr, `Redis not reachable at ${url}`)
  t.match(r.stderr, /REDIS_URL/)
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
