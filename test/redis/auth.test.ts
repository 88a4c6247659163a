/**
 * Redis credentials kept out of URLs (issue 25): from the environment ($REDIS_PASSWORD,
 * $REDIS_USERNAME, $REDIS_SENTINEL_PASSWORD) or from a file (`redis.passwordFile`, a mounted secret),
 * against real servers that refuse a client without them: standalone (password, and an ACL user),
 * Sentinel (the sentinels' own password besides the primary's) and Cluster.
 */
import t, { type Test } from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startBackend } from '../helpers/backend.js'
import { BIN, childEnv, startClaylb, writeConfig } from '../helpers/claylb.js'
import { json, req } from '../helpers/http.js'
import { freePort, startRedis, startRedisCluster } from '../helpers/redis.js'
import { buildConfig } from '../../src/shared/config/load.js'
import { closeRedis, createRedis, key, waitReady } from '../../src/shared/redis/index.js'

const secretFile = (password: string): string => {
  const f = join(mkdtempSync(join(tmpdir(), 'claylb-redis-auth-')), 'password')
  writeFileSync(f, `${password}\n`) // as `echo` or a Secret written by hand leaves it
  return f
}

/** `name` in this process's environment (createRedis reads it) for the rest of the test */
const setEnv = (t: Test, name: string, value: string): void => {
  const saved = process.env[name]
  process.env[name] = value
  t.teardown(() => { if (saved === undefined) delete process.env[name]; else process.env[name] = saved })
}

t.test('standalone: REDIS_PASSWORD authenticates claylb and its keyed routes, the URL carries none', async (t) => {
  const redis = await startRedis({ useEnv: false, args: ['--requirepass', 'pw-standalone'] })
  t.teardown(() => redis.close())
  const backend = await startBackend()
  t.teardown(() => backend.close())
  const lb = await startClaylb({
    config: { upstreams: [{ url: backend.url }], idempotency: { routes: [{ match: 'POST /orders' }] } },
    env: { REDIS_URL: redis.url, REDIS_PASSWORD: 'pw-standalone' },
  })
  t.teardown(() => lb.stop('SIGKILL'))
  t.ok(lb.logs.find((l) => l['msg'] === 'state tier reachable'), 'the probe authenticated')
  const r = await req(`${lb.url}/orders`, { method: 'POST', headers: { 'idempotency-key': 'auth-1', 'content-type': 'application/json' }, body: '{}' })
  t.equal(r.status, 200, 'a keyed request is served (its key claimed in Redis)')
  const stored = spawnSync('redis-cli', ['--no-auth-warning', '-a', 'pw-standalone', '-u', redis.url, '--scan', '--pattern', 'claylb:*'], { encoding: 'utf8' })
  t.ok(stored.stdout.trim().length > 0, 'the key is in that Redis')
  t.same((await json<{ missing: string[] }>(`${lb.admin}/readyz`)).missing, [])
  t.notMatch(JSON.stringify(lb.logs), 'pw-standalone', 'the password is never logged')
})

t.test('standalone: an ACL user from redis.username and redis.passwordFile; an unreadable file is a clear error', async (t) => {
  const redis = await startRedis({ useEnv: false, args: ['--user', 'default', 'off', '--user', 'claylb', 'on', '>pw-acl', '~*', '&*', '+@all'] })
  t.teardown(() => redis.close())
  const config = buildConfig({ redis: { url: redis.url, username: 'claylb', passwordFile: secretFile('pw-acl') } }, {}, {}).redis
  const client = createRedis(config, 'test')
  t.teardown(() => closeRedis(client))
  await waitReady(client, 10_000)
  t.equal(await client.acl('WHOAMI'), 'claylb', 'authenticated as the configured user')

  const missing = join(tmpdir(), `claylb-no-such-${process.pid}`)
  const r = spawnSync(process.execPath, [BIN, 'start', '--port', '0', '--admin-port', '0', '--config', writeConfig({
    upstreams: [{ url: 'http://127.0.0.1:9' }], idempotency: { routes: [{ match: 'POST /orders' }] }, redis: { url: redis.url, passwordFile: missing },
  })], { encoding: 'utf8', timeout: 60_000, env: childEnv({ REDIS_URL: '' }) })
  t.equal(r.status, 1, 'exit 1')
  t.match(r.stderr, `redis.passwordFile: cannot read ${missing}`)
})

t.test('sentinel: the sentinels\' password from REDIS_SENTINEL_PASSWORD, the primary\'s from redis.passwordFile', async (t) => {
  const primary = await startRedis({ useEnv: false, args: ['--requirepass', 'pw-primary'] })
  t.teardown(() => primary.close())
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'claylb-sentinel-auth-'))
  const conf = join(dir, 'sentinel.conf')
  writeFileSync(conf, `port ${port}\nbind 127.0.0.1\nrequirepass pw-sentinel\nsentinel monitor main 127.0.0.1 ${primary.port} 1\nsentinel auth-pass main pw-primary\n`)
  const sentinel = spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' })
  t.teardown(() => { sentinel.kill('SIGKILL') })
  const config = buildConfig({ redis: { sentinel: { name: 'main', nodes: [`redis://127.0.0.1:${port}`] }, passwordFile: secretFile('pw-primary') } }, {}, {}).redis
  setEnv(t, 'REDIS_SENTINEL_PASSWORD', 'pw-sentinel')
  const client = createRedis(config, 'test')
  t.teardown(() => closeRedis(client))
  await waitReady(client, 15_000)
  await client.set(key('t:', 'sentinel-auth'), '1')
  t.equal(String(await client.info('server')).match(/tcp_port:(\d+)/)?.[1], String(primary.port), 'the primary, found through the sentinel')
})

t.test('cluster: every node authenticated with REDIS_PASSWORD', async (t) => {
  const cluster = await startRedisCluster({ password: 'pw-cluster' })
  t.teardown(() => cluster.close())
  const config = buildConfig({ redis: { cluster: cluster.urls } }, {}, {}).redis
  setEnv(t, 'REDIS_PASSWORD', 'pw-cluster')
  const client = createRedis(config, 'test')
  t.teardown(() => closeRedis(client))
  await waitReady(client, 15_000)
  // keys in different slots: the client reaches (and authenticates with) more than one node
  for (const tag of ['a', 'b', 'c', 'd', 'e', 'f']) await client.set(key('t:', tag, ':auth'), tag)
  t.equal(await client.get(key('t:', 'f', ':auth')), 'f')
})
