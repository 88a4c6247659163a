/**
 * redis.passwordEnv: the Redis password comes from the environment (a Kubernetes Secret), so no
 * config file or ConfigMap holds it in a URL; claylb authenticates with it.
 */
import t from 'tap'
import { startRedis } from '../helpers/redis.js'
import { connectRedis } from '../helpers/ioredis.js'
import { configProblems } from '../helpers/config.js'
import { buildConfig } from '../../src/shared/config/load.js'
import { createRedis, closeRedis, describeRedis } from '../../src/shared/redis/index.js'

t.test('the password from the variable is set on every URL; a missing one is a config problem', async (t) => {
  const env = { REDIS_PASSWORD: 's3cr/t' }
  const cluster = buildConfig({ redis: { cluster: ['redis://a:6379', 'redis://b:6379'], passwordEnv: 'REDIS_PASSWORD' } }, {}, env).redis
  t.same(cluster.cluster?.map((u) => decodeURIComponent(new URL(u).password)), ['s3cr/t', 's3cr/t'], 'each Cluster seed')
  const sentinel = buildConfig({ redis: { sentinel: { name: 'm', nodes: ['redis://s:26379'] }, passwordEnv: 'REDIS_PASSWORD' } }, {}, env).redis
  t.equal(decodeURIComponent(new URL(sentinel.sentinel!.nodes[0]!).password), 's3cr/t', 'each Sentinel node')
  t.notMatch(describeRedis(cluster), /s3cr/, 'never in a log line')
  t.same(configProblems({ redis: { url: 'redis://r:6379', passwordEnv: 'REDIS_PASSWORD' } }), ['redis.passwordEnv: the environment variable REDIS_PASSWORD is not set or empty'])
  t.same(configProblems({ redis: { url: 'redis://:x@r:6379', passwordEnv: 'REDIS_PASSWORD' } }, env), ['redis.passwordEnv: a Redis URL has a password of its own; give it in one place'])
})

t.test('claylb authenticates to a Redis that requires the password', async (t) => {
  const redis = await startRedis({ useEnv: false })
  t.teardown(() => redis.close())
  const admin = await connectRedis(redis.url)
  await admin.config('SET', 'requirepass', 'from-a-secret')
  admin.disconnect()
  const config = buildConfig({ redis: { url: redis.url, passwordEnv: 'REDIS_PASSWORD', commandTimeoutMs: 2000 } }, {}, { REDIS_PASSWORD: 'from-a-secret' }).redis
  const client = createRedis(config, 'test')
  t.teardown(() => closeRedis(client))
  t.equal(await client.set('k', 'v'), 'OK', 'authenticated')
  const without = createRedis(buildConfig({ redis: { url: redis.url, commandTimeoutMs: 2000 } }, {}, {}).redis, 'test')
  t.teardown(() => closeRedis(without))
  await t.rejects(without.set('k', 'v'), /NOAUTH|Authentication/, 'the same URL without it is refused: the password did the work')
})
