/**
 * The Redis password is given like every secret of the config: inline (`redis.password`), in a file
 * (`redis.passwordFile`) or in an environment variable (`redis.passwordEnv`), at most one of them.
 * Each way authenticates against a real redis-server with requirepass; the implicit $REDIS_PASSWORD
 * of older releases still works and is reported as deprecated (once at start, and by check-config).
 */
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startRedis } from '../helpers/redis.js'
import { startBackend } from '../helpers/backend.js'
import { BIN, childEnv, startClaylb, writeConfig } from '../helpers/claylb.js'
import { configProblems } from '../helpers/config.js'
import { buildConfig } from '../../src/shared/config/load.js'
import { createRedis, closeRedis, describeRedis } from '../../src/shared/redis/index.js'
import { redisAuth } from '../../src/shared/redis/client.js'

const PASSWORD = 'from-a-secret'

const secretFile = (password: string): string => {
  const f = join(mkdtempSync(join(tmpdir(), 'claylb-redis-pw-')), 'password')
  writeFileSync(f, `${password}\n`)
  return f
}

t.test('at most one source; a named variable that is unset, or a URL with its own password, is a config problem', async (t) => {
  t.same(configProblems({ redis: { url: 'redis://r:6379', password: 'a', passwordEnv: 'P' } }, { P: 'b' }), ['redis.password: give one of redis.password, redis.passwordEnv, not 2'])
  t.same(configProblems({ redis: { url: 'redis://r:6379', passwordEnv: 'REDIS_PASSWORD' } }), ['redis.passwordEnv: the environment variable REDIS_PASSWORD is not set or empty'])
  t.same(configProblems({ redis: { url: 'redis://:x@r:6379', passwordEnv: 'REDIS_PASSWORD' } }, { REDIS_PASSWORD: 'y' }), ['redis.passwordEnv: a Redis URL has a password of its own; give it in one place'])
  const cluster = buildConfig({ redis: { cluster: ['redis://a:6379', 'redis://b:6379'], passwordEnv: 'P' } }, {}, { P: 's3cr/t' }).redis
  t.same(cluster.cluster, ['redis://a:6379', 'redis://b:6379'], 'no URL carries it')
  t.equal(redisAuth(cluster, {}).data.password, 's3cr/t', 'every node is handed it by the one credentials path')
  t.notMatch(describeRedis(cluster), /s3cr/, 'never in a log line')
  const sentinel = buildConfig({ redis: { sentinel: { name: 'm', nodes: ['redis://s:26379'] }, passwordEnv: 'P' } }, {}, { P: 's3cr/t' }).redis
  t.equal(redisAuth(sentinel, {}).data.password, 's3cr/t', 'Sentinel\'s primary and replicas')
  t.equal(decodeURIComponent(new URL(sentinel.sentinel!.nodes[0]!).password), 's3cr/t', 'the sentinels too, as before the fold')
})

t.test('the implicit $REDIS_PASSWORD is deprecated, named ones are not', async (t) => {
  t.same(buildConfig({ redis: { url: 'redis://r:6379' } }, {}, { REDIS_PASSWORD: 'x' }).deprecations,
    ['REDIS_PASSWORD: read without the config naming it is deprecated; set redis.passwordEnv: REDIS_PASSWORD'])
  t.same(buildConfig({ redis: { url: 'redis://r:6379', passwordEnv: 'REDIS_PASSWORD' } }, {}, { REDIS_PASSWORD: 'x' }).deprecations, [])
  t.same(buildConfig({ redis: { url: 'redis://r:6379' } }, {}, {}).deprecations, [])
})

t.test('each way authenticates against a Redis that requires the password', async (t) => {
  const redis = await startRedis({ useEnv: false, args: ['--requirepass', PASSWORD] })
  t.teardown(() => redis.close())
  const ways: Array<[string, Record<string, unknown>, NodeJS.ProcessEnv]> = [
    ['inline', { password: PASSWORD }, {}],
    ['file', { passwordFile: secretFile(PASSWORD) }, {}],
    ['env', { passwordEnv: 'MY_REDIS_SECRET' }, { MY_REDIS_SECRET: PASSWORD }],
    ['deprecated $REDIS_PASSWORD', {}, { REDIS_PASSWORD: PASSWORD }],
  ]
  for (const [name, keys, env] of ways) {
    const config = buildConfig({ redis: { url: redis.url, commandTimeoutMs: 2000, ...keys } }, {}, env).redis
    const saved = process.env['REDIS_PASSWORD']
    if (env['REDIS_PASSWORD'] !== undefined) process.env['REDIS_PASSWORD'] = env['REDIS_PASSWORD']
    const client = createRedis(config, 'test')
    try {
      t.equal(await client.set(`k-${name}`, 'v'), 'OK', `${name}: authenticated`)
    } finally {
      closeRedis(client)
      if (saved === undefined) delete process.env['REDIS_PASSWORD']; else process.env['REDIS_PASSWORD'] = saved
    }
  }
  const without = createRedis(buildConfig({ redis: { url: redis.url, commandTimeoutMs: 2000 } }, {}, {}).redis, 'test')
  t.teardown(() => closeRedis(without))
  await t.rejects(without.set('k', 'v'), /NOAUTH|Authentication/, 'the same URL without it is refused: the password did the work')
})

t.test('claylb started with the deprecated variable works and warns once; check-config lists it', async (t) => {
  const redis = await startRedis({ useEnv: false, args: ['--requirepass', PASSWORD] })
  t.teardown(() => redis.close())
  const backend = await startBackend()
  t.teardown(() => backend.close())
  const config = { upstreams: [{ url: backend.url }], redis: { url: redis.url }, idempotency: { routes: [{ match: 'POST /orders' }] } }
  const lb = await startClaylb({ config, env: { REDIS_PASSWORD: PASSWORD } })
  t.teardown(() => lb.stop('SIGKILL'))
  t.ok(lb.logs.find((l) => l['msg'] === 'state tier reachable'), 'the probe authenticated')
  const warned = lb.logs.filter((l) => l['code'] === 'CONFIG_DEPRECATED')
  t.same(warned.map((l) => l['msg']), ['REDIS_PASSWORD: read without the config naming it is deprecated; set redis.passwordEnv: REDIS_PASSWORD'], 'once')
  t.notMatch(JSON.stringify(lb.logs), PASSWORD, 'the password is never logged')
  const check = spawnSync(BIN, ['check-config', writeConfig(config)], { encoding: 'utf8', env: childEnv({ REDIS_PASSWORD: PASSWORD }) })
  t.equal(check.status, 0)
  t.match(check.stdout, /^warning: REDIS_PASSWORD: read without the config naming it is deprecated/m)
})
