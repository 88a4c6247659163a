import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { deadPort } from '../helpers/backend.js'
import { freePort, startRedis, startRedisCluster } from '../helpers/redis.js'
import { buildConfig } from '../../src/shared/config/load.js'
import { createRedis, waitReady, whenConnected, closeRedis, defineScript, key, StateUnavailableError, StateOutcomeUnknownError, describeRedis } from '../../src/shared/redis/index.js'

const LUA = `
redis.call('HINCRBY', KEYS[1], 'n', ARGV[1])
redis.call('SET', KEYS[2], ARGV[2])
return redis.call('HGET', KEYS[1], 'n')`

t.test('standalone: scripts by EVALSHA, outage is a fast StateUnavailableError, reconnects by itself', async (t) => {
  const redis = await startRedis({ useEnv: false })
  t.teardown(() => redis.close())
  const config = buildConfig({ redis: { url: redis.url, commandTimeoutMs: 300 } }, {}, {}).redis
  const client = createRedis(config, 'test')
  t.teardown(() => closeRedis(client))
  t.equal(await client.ping(), 'PONG', 'a command sent before the first connection waits for it')
  await waitReady(client, 5000)
  const bump = defineScript<string>(client, 'testBump', 2, LUA, { writes: true })
  const tag = 'abc'
  const keys = [key('t:', tag, ':h'), key('t:', tag, ':s')]
  t.equal(keys[0], 't:{abc}:h')
  t.equal(await bump(keys, [2, 'x']), '2')
  t.equal(await bump(keys, [3, 'y']), '5')
  const stats = String(await client.info('commandstats'))
  t.match(stats, /cmdstat_evalsha:calls=/, 'run with EVALSHA')
  await t.rejects(bump(['only-one'], []), TypeError, 'every key must be passed in KEYS')

  await redis.stop()
  const began = Date.now()
  const err = await bump(keys, [1, 'z']).catch((e: unknown) => e)
  const took = Date.now() - began
  t.type(err, StateUnavailableError)
  t.equal((err as StateUnavailableError).status, 503)
  t.equal((err as StateUnavailableError).code, 'CLAYLB_STATE_UNAVAILABLE')
  t.ok(took < 2000, `failed within the bound (${took} ms)`)

  await redis.start()
  await waitReady(client, 5000)
  t.equal(await bump(keys, [1, 'z']), '1', 'works again after Redis restarted (NOSCRIPT handled)')
})

t.test('a write whose reply is lost is outcome-unknown (500), never a retryable 503; a read is a 503', async (t) => {
  const redis = await startRedis({ useEnv: false, persist: true })
  t.teardown(() => redis.close())
  const config = buildConfig({ redis: { url: redis.url, commandTimeoutMs: 300 } }, {}, {}).redis
  const client = createRedis(config, 'test')
  const admin = createRedis(config, 'admin')
  t.teardown(() => Promise.all([closeRedis(client), closeRedis(admin)]))
  await Promise.all([waitReady(client, 5000), waitReady(admin, 5000)])
  const bump = defineScript<string>(client, 'testBump', 2, LUA, { writes: true })
  const peek = defineScript<string>(client, 'testPeek', 1, "return redis.call('HGET', KEYS[1], 'n')", { writes: false })
  const keys = [key('t:', 'lost', ':h'), key('t:', 'lost', ':s')]
  t.equal(await bump(keys, [1, 'a']), '1')

  // Redis holds every write for 1 s: the script is sent, the client gives up after 300 ms, Redis runs it later
  await admin.call('CLIENT', 'PAUSE', '1000', 'WRITE')
  const err = await bump(keys, [1, 'b']).catch((e: unknown) => e)
  t.type(err, StateOutcomeUnknownError, 'the sent write is outcome-unknown')
  t.equal((err as StateOutcomeUnknownError).status, 500)
  t.equal((err as StateOutcomeUnknownError).code, 'CLAYLB_STATE_OUTCOME_UNKNOWN')
  t.equal((err as StateOutcomeUnknownError).retryAfter, undefined, 'no retry-after: a retry could apply it twice')
  await new Promise((resolve) => setTimeout(resolve, 1000))
  t.equal(await admin.hget(keys[0]!, 'n'), '2', 'and it was in fact applied: a retry would have counted twice')

  await redis.stop()
  await new Promise((resolve) => setTimeout(resolve, 100))
  const refused = await bump(keys, [1, 'c']).catch((e: unknown) => e)
  t.type(refused, StateUnavailableError, 'not connected: refused before sending, a 503 safe to retry')
  const read = await peek([keys[0]!], []).catch((e: unknown) => e)
  t.type(read, StateUnavailableError, 'a read is always a 503')
  await redis.start()
  await waitReady(client, 5000)
  t.equal(await bump(keys, [1, 'd']), '3', 'the refused write was never applied')
})

t.test('a write on a client still making its first connection waits for it, bounded, instead of a 503', async (t) => {
  // a worker's client is made by its first request that needs state: that request's write used to be
  // refused with 503 "Redis is connecting" (seen as 503s on POST /orders after every worker recycle)
  const redis = await startRedis({ useEnv: false })
  t.teardown(() => redis.close())
  const fresh = createRedis(buildConfig({ redis: { url: redis.url, commandTimeoutMs: 2000 } }, {}, {}).redis, 'test')
  t.teardown(() => closeRedis(fresh))
  const bump = defineScript<string>(fresh, 'testBump', 2, LUA, { writes: true })
  t.not(fresh.status, 'ready', `sent before the first connection (${fresh.status})`)
  t.equal(await bump([key('t:', 'first', ':h'), key('t:', 'first', ':s')], [1, 'a']), '1', 'the first write waited for the connection')
  await whenConnected(fresh, 'orders')
  t.pass('connected: resolves at once')

  // a first connection that never comes: a 503 within the command timeout, nothing sent
  const never = createRedis(buildConfig({ redis: { url: `redis://127.0.0.1:${await deadPort()}`, commandTimeoutMs: 300 } }, {}, {}).redis, 'test')
  t.teardown(() => closeRedis(never))
  const began = Date.now()
  const err = await whenConnected(never, 'orders').catch((e: unknown) => e)
  t.type(err, StateUnavailableError)
  t.match((err as Error).message, /^orders unavailable: Redis not reachable within 300 ms/)
  t.ok(Date.now() - began < 1500, `bounded (${Date.now() - began} ms)`)
  const refused = await defineScript(never, 'testBump', 2, LUA, { writes: true })(['a', 'b'], [1, 'x']).catch((e: unknown) => e)
  t.type(refused, StateUnavailableError, 'a script write too: a 503 safe to retry')

  // once it was up, a lost connection is refused at once, as before
  await redis.stop()
  await new Promise((resolve) => setTimeout(resolve, 100))
  const lostAt = Date.now()
  const lost = await whenConnected(fresh, 'orders').catch((e: unknown) => e)
  t.type(lost, StateUnavailableError)
  t.ok(Date.now() - lostAt < 100, `a lost connection is refused at once (${Date.now() - lostAt} ms)`)
})

t.test('cluster: a multi-key script with one hash tag, no CROSSSLOT', async (t) => {
  const cluster = await startRedisCluster()
  t.teardown(() => cluster.close())
  const config = buildConfig({ redis: { cluster: cluster.urls } }, {}, {}).redis
  t.match(describeRedis(config), /^cluster redis:\/\/127\.0\.0\.1:\d+/)
  const client = createRedis(config, 'test')
  t.teardown(() => closeRedis(client))
  await waitReady(client, 10_000)
  const bump = defineScript<string>(client, 'testBump', 2, LUA, { writes: true })
  for (const tag of ['a', 'b', 'c', 'd', 'e', 'f']) {
    t.equal(await bump([key('t:', tag, ':h'), key('t:', tag, ':s')], [1, 'x']), '1', `tag ${tag}`)
  }
})

t.test('sentinel: the primary found through a real redis-sentinel', async (t) => {
  const primary = await startRedis({ useEnv: false })
  t.teardown(() => primary.close())
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'claylb-sentinel-'))
  const conf = join(dir, 'sentinel.conf')
  writeFileSync(conf, `port ${port}\nbind 127.0.0.1\nsentinel monitor main 127.0.0.1 ${primary.port} 1\n`)
  const sentinel = spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' })
  t.teardown(() => { sentinel.kill('SIGKILL') })
  const config = buildConfig({ redis: { sentinel: { name: 'main', nodes: [`redis://127.0.0.1:${port}`] } } }, {}, {}).redis
  t.equal(describeRedis(config), `sentinel main@redis://127.0.0.1:${port}`)
  const client = createRedis(config, 'test')
  t.teardown(() => closeRedis(client))
  await waitReady(client, 10_000)
  const bump = defineScript<string>(client, 'testBump', 2, LUA, { writes: true })
  t.equal(await bump([key('t:', 's', ':h'), key('t:', 's', ':s')], [4, 'x']), '4')
  t.equal(String(await client.info('server')).match(/tcp_port:(\d+)/)?.[1], String(primary.port), 'talking to the primary')
})
