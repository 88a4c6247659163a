/**
 * @module redis/client
 * The one place that builds Redis clients (ioredis) from `config.redis`: standalone (`url`),
 * Sentinel (`sentinel: { name, nodes }`) or Cluster (`cluster: [urls]`).
 *
 * Request-path behaviour: no offline queue once connected (a command while disconnected fails at once;
 * before the first connection commands wait, bounded by the command timeout), a bounded
 * command timeout, no automatic resend of a command whose reply was lost (a script may not be safe to
 * run twice), and reconnection forever in the background. An outage is a fast, clear error, never a hang.
 */
import type { Cluster, ClusterOptions, Redis, RedisOptions } from 'ioredis'
import type { Config } from '../config/schema.js'
import { StateUnavailableError, notConnected } from './errors.js'
import { ioredis } from '../lazy-modules.js'
import { readFileSync } from 'node:fs'
import { ConfigError } from '../config/error.js'

/** what a client needs of `config.redis` (where it was named, `source`, is the start's business) */
export type RedisConfig = Omit<Config['redis'], 'source'>
export type RedisClient = Redis | Cluster

/** clients of createRedis still making their first connection: how long a write may wait for it */
const firstConnection = new WeakMap<RedisClient, number>()

/** ms between reconnect attempts grows to this cap; a restarted Redis is back within about a second */
const MAX_RECONNECT_DELAY_MS = 1000

function hostPort (url: string): { host: string, port: number } {
  const u = new URL(url)
  return { host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port || 6379) }
}

interface Credentials { username?: string, password?: string }

function readPasswordFile (path: string, key: string): string {
  try {
    // the file holds the password alone; the newline an editor or `echo` leaves is not part of it
    return readFileSync(path, 'utf8').replace(/\r?\n$/, '')
  } catch (err) {
    throw new ConfigError([`${key}: cannot read ${path}: ${(err as Error).message}`])
  }
}

function pick (password: string | undefined, file: string | undefined, fileKey: string, username: string | undefined, envUser: string | undefined, envPassword: string | undefined): Credentials {
  const c: Credentials = {}
  const u = username ?? (envUser || undefined)
  const p = password ?? (file !== undefined ? readPasswordFile(file, fileKey) : (envPassword || undefined))
  if (u !== undefined) c.username = u
  if (p !== undefined) c.password = p
  return c
}

/**
 * Who claylb is to Redis, kept out of URLs: for the data nodes, the URL's credentials when it has them,
 * else `redis.username` / `redis.password` (inline or from `passwordEnv`, config/redis-password.ts) or
 * `redis.passwordFile`, else the deprecated implicit $REDIS_USERNAME / $REDIS_PASSWORD; for Sentinel's
 * sentinels, `redis.sentinel.username` / `passwordFile`, else $REDIS_SENTINEL_USERNAME /
 * $REDIS_SENTINEL_PASSWORD, else the first sentinel URL's. A password file that cannot be read is a
 * ConfigError naming the key (checked at start: cli.ts).
 */
export function redisAuth (config: RedisConfig, env: NodeJS.ProcessEnv = process.env): { data: Credentials, sentinel: Credentials } {
  const data = pick(config.password, config.passwordFile, 'redis.passwordFile', config.username, env['REDIS_USERNAME'], env['REDIS_PASSWORD'])
  const s = config.sentinel
  const sentinel = s === undefined ? {} : pick(undefined, s.passwordFile, 'redis.sentinel.passwordFile', s.username, env['REDIS_SENTINEL_USERNAME'], env['REDIS_SENTINEL_PASSWORD'])
  return { data, sentinel }
}

/** the URL's own credentials win over the configured ones (it names them for that very server) */
function withAuth (fromUrl: Credentials, auth: Credentials): Credentials {
  return fromUrl.password !== undefined || fromUrl.username !== undefined ? {} : auth
}

function credentials (url: string): Pick<RedisOptions, 'username' | 'password' | 'tls' | 'db'> {
  const u = new URL(url)
  const o: Pick<RedisOptions, 'username' | 'password' | 'tls' | 'db'> = {}
  if (u.username) o.username = decodeURIComponent(u.username)
  if (u.password) o.password = decodeURIComponent(u.password)
  if (u.protocol === 'rediss:') o.tls = {}
  const db = u.pathname.replace(/^\//, '')
  if (db) o.db = Number(db)
  return o
}

/** What a log line or an error message calls this Redis. */
export function describeRedis (config: RedisConfig): string {
  if (!config.cluster && !config.sentinel && config.url === '') return 'none configured'
  if (config.cluster) return `cluster ${config.cluster.map(redact).join(',')}`
  if (config.sentinel) return `sentinel ${config.sentinel.name}@${config.sentinel.nodes.map(redact).join(',')}`
  return redact(config.url)
}

function redact (url: string): string {
  const u = new URL(url)
  if (u.password) u.password = '***'
  return u.toString().replace(/\/$/, '')
}

/**
 * A client for `config.redis`. `role` names the connection (CLIENT LIST shows `claylb:<role>`).
 * The client connects and reconnects by itself; use `waitReady` before relying on it.
 */
export function createRedis (config: RedisConfig, role = 'main'): RedisClient {
  // nothing names a Redis (config/load.ts RedisSource 'none') and none was started for this process
  if (!config.cluster && !config.sentinel && config.url === '') throw new StateUnavailableError('no Redis configured (set REDIS_URL, --redis or redis.url)')
  const common = {
    connectionName: `claylb:${role}`,
    commandTimeout: config.commandTimeoutMs,
    connectTimeout: Math.max(1000, config.commandTimeoutMs * 2),
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
  } satisfies RedisOptions
  const { Cluster, Redis } = ioredis()
  const auth = redisAuth(config)
  let client: RedisClient
  if (config.cluster) {
    const first = credentials(config.cluster[0]!)
    const options: ClusterOptions = {
      enableOfflineQueue: true,
      clusterRetryStrategy: (times) => Math.min(times * 100, MAX_RECONNECT_DELAY_MS),
      slotsRefreshTimeout: Math.max(1000, config.commandTimeoutMs * 2),
      redisOptions: { ...common, ...first, ...withAuth(first, auth.data) },
    }
    client = new Cluster(config.cluster.map(hostPort), options)
  } else {
    const retryStrategy = (times: number): number => Math.min(times * 50, MAX_RECONNECT_DELAY_MS)
    if (config.sentinel) {
      // a first sentinel URL's credentials serve both the sentinels and the data nodes, as before
      const creds = credentials(config.sentinel.nodes[0]!)
      const s = auth.sentinel.username !== undefined || auth.sentinel.password !== undefined ? auth.sentinel : creds
      client = new Redis({
        ...common,
        ...creds,
        ...withAuth(creds, auth.data),
        enableOfflineQueue: true,
        retryStrategy,
        sentinels: config.sentinel.nodes.map(hostPort),
        name: config.sentinel.name,
        ...(s.username ? { sentinelUsername: s.username } : {}),
        ...(s.password ? { sentinelPassword: s.password } : {}),
        sentinelRetryStrategy: retryStrategy,
      })
    } else {
      const fromUrl = credentials(config.url)
      client = new Redis({ ...common, ...fromUrl, ...withAuth(fromUrl, auth.data), ...hostPort(config.url), enableOfflineQueue: true, retryStrategy })
    }
  }
  // ioredis prints unhandled 'error' events to the console; callers that care listen themselves.
  client.on('error', () => {})
  // Requests that arrive while the very first connection is being made wait for it (bounded by the
  // command timeout); after that, a lost connection fails commands at once instead of queueing them.
  firstConnection.set(client, config.commandTimeoutMs)
  client.once('ready', () => {
    client.options.enableOfflineQueue = false
    firstConnection.delete(client)
  })
  return client
}

/**
 * Resolves when a write may be sent to `client` now; else rejects with StateUnavailableError before
 * anything was sent (a 503 safe to retry). A client still making its very first connection (a worker's
 * client is made by its first request that needs state) is waited for, bounded by the command timeout,
 * like any command sent then; a connection that was up and is lost is refused at once.
 */
export async function whenConnected (client: RedisClient, what = 'state tier'): Promise<void> {
  const refused = notConnected(client, what)
  if (refused === undefined) return
  const waitMs = firstConnection.get(client)
  if (waitMs === undefined || client.status === 'end') throw refused
  await waitReady(client, waitMs, `${what} unavailable: Redis`)
}

/**
 * Resolves once the client is ready; rejects with StateUnavailableError after `timeoutMs` (or at the
 * first connection error with `failFast`). The client keeps trying either way.
 */
export function waitReady (client: RedisClient, timeoutMs: number, name = 'Redis', failFast = false): Promise<void> {
  if (client.status === 'ready') return Promise.resolve()
  return new Promise((resolve, reject) => {
    let lastError: Error | undefined
    const onError = (err: Error): void => {
      lastError = err
      if (failFast) done(new StateUnavailableError(`${name} not reachable (${err.message})`, { cause: err }))
    }
    const done = (err?: Error): void => {
      clearTimeout(timer)
      client.off('ready', onReady)
      client.off('error', onError)
      if (err) reject(err)
      else resolve()
    }
    const onReady = (): void => done()
    const timer = setTimeout(() => done(new StateUnavailableError(
      `${name} not reachable within ${timeoutMs} ms${lastError ? ` (${lastError.message})` : ''}`, { cause: lastError })), timeoutMs)
    client.on('ready', onReady)
    client.on('error', onError)
  })
}

/** Close without waiting for replies that may never come. */
export async function closeRedis (client: RedisClient): Promise<void> {
  try {
    await Promise.race([client.quit(), new Promise((resolve) => setTimeout(resolve, 500).unref())])
  } catch { /* already gone */ }
  client.disconnect()
}

export interface StateLogger {
  info (obj: object, msg: string): void
  warn (obj: object, msg: string): void
}

/** One line when the state tier goes away and one when it is back, not one per failed request. */
export function logStateTransitions (client: RedisClient, where: string, logger: StateLogger): void {
  let up = false
  let down = false
  client.on('ready', () => {
    if (down) logger.info({ redis: where }, 'state tier reachable again')
    up = true
    down = false
  })
  const lost = (reason: string): void => {
    if (down) return
    down = true
    logger.warn({ redis: where, error: reason }, up ? 'state tier lost: requests that need it answer 503' : 'state tier not reachable yet')
  }
  client.on('error', (err: Error) => lost(err.message))
  // a dropped connection that comes back before a reconnect attempt fails raises no 'error'
  client.on('close', () => { if (up) lost('connection closed') })
}
