/**
 * @module config/redis-password
 * The data nodes' Redis password, given like every secret of the config (config/secret-source.ts):
 * inline (`redis.password`), in a file (`redis.passwordFile`, a mounted Secret, read where the client
 * connects: redis/client.ts) or in an environment variable (`redis.passwordEnv`), at most one of the
 * three. The variable is read here into `password`, so one path (redis/client.ts redisAuth) hands it
 * to every node (standalone, Sentinel's primary and replicas, each Cluster node) and no URL carries it.
 * The implicit $REDIS_PASSWORD / $REDIS_USERNAME of older releases still work, with a deprecation.
 */
import { fromEnv } from './secret-source.js'

interface RedisSecrets {
  url: string
  cluster?: readonly string[] | undefined
  sentinel?: { name: string, nodes: readonly string[] } | undefined
  username?: string | undefined
  password?: string | undefined
  passwordFile?: string | undefined
  passwordEnv?: string | undefined
}

/** `redis` with `password` resolved from its variable; problems; deprecations (logged once at start) */
export function resolveRedisPassword<R extends RedisSecrets> (redis: R, env: NodeJS.ProcessEnv): [R, string[], string[]] {
  const given = [redis.password !== undefined && 'password', redis.passwordFile !== undefined && 'passwordFile', redis.passwordEnv !== undefined && 'passwordEnv'].filter(Boolean)
  if (given.length > 1) return [redis, [`redis.password: give one of redis.${given.join(', redis.')}, not ${given.length}`], []]
  const deprecated = given.length === 0 ? implicitEnv(redis, env) : []
  if (redis.passwordEnv === undefined) return [redis, [], deprecated]
  const [password, problems] = fromEnv('redis.passwordEnv', redis.passwordEnv, env)
  if (password === undefined) return [redis, problems, []]
  const urls = [redis.url, ...(redis.cluster ?? []), ...(redis.sentinel?.nodes ?? [])].filter((u) => u !== '')
  if (urls.some((u) => new URL(u).password !== '')) return [redis, ['redis.passwordEnv: a Redis URL has a password of its own; give it in one place'], []]
  const out = { ...redis, password }
  // as before this key was folded in: the sentinels are given it too (as their URLs' password, the
  // last of their own credentials' sources), so a Sentinel setup that relied on it keeps working
  if (redis.sentinel !== undefined) out.sentinel = { ...redis.sentinel, nodes: redis.sentinel.nodes.map((n) => withPassword(n, password)) }
  return [out, [], []]
}

function withPassword (url: string, password: string): string {
  const u = new URL(url)
  u.password = encodeURIComponent(password)
  return u.toString()
}

/** the variables read without the config naming them: they still work, and say how to name them */
function implicitEnv (redis: RedisSecrets, env: NodeJS.ProcessEnv): string[] {
  const out: string[] = []
  if (env['REDIS_PASSWORD']) out.push('REDIS_PASSWORD: read without the config naming it is deprecated; set redis.passwordEnv: REDIS_PASSWORD')
  if (redis.username === undefined && env['REDIS_USERNAME']) out.push('REDIS_USERNAME: read without the config naming it is deprecated; set redis.username')
  return out
}
