/**
 * @module config/redis-password
 * `redis.passwordEnv`: the Redis password from an environment variable (a Kubernetes Secret), so no
 * URL in a config file or ConfigMap carries it. It is set on every URL claylb connects with (the
 * standalone URL, each Cluster seed, each Sentinel node), where redis/client.ts reads credentials.
 */
import { fromEnv } from './secret-source.js'

interface RedisUrls { url: string, cluster?: readonly string[] | undefined, sentinel?: { name: string, nodes: readonly string[] } | undefined, passwordEnv?: string | undefined }

export function withRedisPassword<R extends RedisUrls> (redis: R, env: NodeJS.ProcessEnv): [R, string[]] {
  if (redis.passwordEnv === undefined) return [redis, []]
  const [password, problems] = fromEnv('redis.passwordEnv', redis.passwordEnv, env)
  if (password === undefined) return [redis, problems]
  const urls = [redis.url, ...(redis.cluster ?? []), ...(redis.sentinel?.nodes ?? [])].filter((u) => u !== '')
  if (urls.some((u) => new URL(u).password !== '')) return [redis, ['redis.passwordEnv: a Redis URL has a password of its own; give it in one place']]
  const set = (url: string): string => {
    const u = new URL(url)
    u.password = encodeURIComponent(password)
    return u.toString()
  }
  const out = { ...redis, url: redis.url === '' ? '' : set(redis.url) }
  if (redis.cluster !== undefined) out.cluster = redis.cluster.map(set)
  if (redis.sentinel !== undefined) out.sentinel = { ...redis.sentinel, nodes: redis.sentinel.nodes.map(set) }
  return [out, []]
}
