/**
 * @module redis/embedded
 * The state tier at start-up. A config that needs Redis: no Redis named (REDIS_URL, --redis,
 * redis.url, cluster, sentinel) → a private, ephemeral redis-server (no persistence, a free port, gone
 * when claylb exits), logged at warn; never an implicit 127.0.0.1:6379. A named one is probed and
 * logged: reachable (info) or not (warn, and claylb starts all the same: what needs no state serves).
 * A config that needs no Redis never touches it (a pure drop-in proxy).
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Config } from '../config/schema.js'
import type { Logger } from '../log.js'
import { closeRedis, createRedis, describeRedis, waitReady } from './client.js'
import { ClaylbError } from '../errors.js'

/** required: start fails without Redis. optional: a custom worker app may use state; warn without it. */
export type RedisNeed = 'required' | 'optional' | 'none'

export function redisNeed (config: Config): RedisNeed {
  if (config.idempotency.routes.length > 0) return 'required'
  // a global rate limit's buckets (without Redis it decides by onStateDown alone)
  if (config.rateLimits.some((l) => l.scope === 'global')) return 'optional'
  if (config.workers.count > 0) return config.workers.app === 'builtin:demo' ? 'required' : 'optional'
  return 'none'
}

export class StateTierStartError extends ClaylbError {
  constructor (message: string, options?: { cause?: unknown }) {
    super('CLAYLB_ERR_REDIS_UNREACHABLE', message, options)
  }
}

export interface StateTier {
  /** the config to run with (redis.url points at the embedded server when one was started) */
  readonly config: Config
  /** the embedded redis-server, when one runs */
  readonly embedded?: EmbeddedRedis
  /** a re-read config (SIGHUP) pointed at the same state tier: the embedded server, when one runs */
  apply (config: Config): Config
  stop (): Promise<void>
}

const PROBE_TIMEOUT_MS = 1500

export async function prepareStateTier (config: Config, logger: Logger): Promise<StateTier> {
  const need = redisNeed(config)
  const none: StateTier = { config, apply: (c) => c, async stop () {} }
  if (need === 'none') return none
  if (config.redis.source === 'none') {
    // never whatever answers on 127.0.0.1:6379 (another tenant's Redis, in a trial): our own, or none
    if (await onPath('redis-server')) {
      const embedded = await startEmbeddedRedis()
      logger.warn({ redis: embedded.url, pid: embedded.pid },
        'no Redis configured (REDIS_URL, --redis, redis.url): started a private ephemeral redis-server (no persistence, stopped on exit); sessions and keys last as long as this process')
      const apply = (c: Config): Config => c.redis.source !== 'none'
        ? c
        : Object.freeze({ ...c, redis: Object.freeze({ ...c.redis, url: embedded.url }) }) as Config
      return { config: apply(config), embedded, apply, stop: () => embedded.stop() }
    }
    const message = 'no Redis configured: set REDIS_URL (or --redis, or redis.url), or put redis-server on the PATH for a private one'
    if (need === 'required') throw new StateTierStartError(message)
    logger.warn({}, `${message}. Worker apps that use sessions or state will answer 503.`)
    return none
  }
  const where = describeRedis(config.redis)
  const probeError = await probe(config)
  if (!probeError) {
    logger.info({ redis: where, from: config.redis.source }, 'state tier reachable')
    return none
  }
  // an outage at start is no reason to crash-loop: routes that need no state serve, the others answer
  // 503 until Redis is back, and the clients keep trying (/readyz names what is missing)
  logger.warn({ redis: where, from: config.redis.source, error: probeError.message },
    `Redis not reachable at ${where}: starting without it; keyed and session routes answer 503 (state-unavailable) until it is. Check ${config.redis.source === 'REDIS_URL' ? 'REDIS_URL' : config.redis.source === 'config' ? 'redis.url (or --redis)' : `redis.${config.redis.source}`}`)
  return none
}

async function probe (config: Config): Promise<Error | undefined> {
  const client = createRedis({ ...config.redis }, 'probe')
  try {
    await waitReady(client, Math.max(PROBE_TIMEOUT_MS, config.redis.commandTimeoutMs * 2), describeRedis(config.redis), true)
    await client.ping()
    return undefined
  } catch (err) {
    return err as Error
  } finally {
    await closeRedis(client)
  }
}

function onPath (cmd: string): Promise<boolean> {
  return new Promise((resolve) => {
    const p = spawn(cmd, ['--version'], { stdio: 'ignore' })
    p.once('error', () => resolve(false))
    p.once('exit', (code) => resolve(code === 0))
  })
}

export interface EmbeddedRedis {
  readonly url: string
  readonly pid: number
  stop (): Promise<void>
}

function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo
      s.close(() => resolve(port))
    })
  })
}

/** A private redis-server on a free loopback port, without persistence. Tries a few ports (the pick races). */
export async function startEmbeddedRedis (): Promise<EmbeddedRedis> {
  let lastError: Error | undefined
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort()
    try {
      return await spawnRedis(port)
    } catch (err) {
      lastError = err as Error
    }
  }
  throw new StateTierStartError(`could not start the embedded redis-server: ${lastError?.message}`, { cause: lastError })
}

function spawnRedis (port: number): Promise<EmbeddedRedis> {
  const dir = mkdtempSync(join(tmpdir(), 'claylb-redis-'))
  const proc = spawn('redis-server', [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    '--daemonize', 'no', '--dir', dir, '--always-show-logo', 'no',
  ], { stdio: ['ignore', 'pipe', 'pipe'] })
  // A watchdog that outlives nothing: when claylb dies by any means (even SIGKILL) its stdin pipe
  // closes, `read` returns, and it kills the redis-server, so no ephemeral server is ever orphaned.
  const watchdog = spawn('sh', ['-c', 'read _; kill "$0" 2>/dev/null', String(proc.pid)], { stdio: ['pipe', 'ignore', 'ignore'] })
  watchdog.unref()
  const killOnExit = (): void => { proc.kill('SIGKILL') }
  process.once('exit', killOnExit)
  const exited = new Promise<void>((resolve) => proc.once('exit', () => {
    process.off('exit', killOnExit)
    watchdog.stdin?.end()
    rmSync(dir, { recursive: true, force: true })
    resolve()
  }))
  const stop = async (): Promise<void> => {
    if (proc.exitCode !== null || proc.signalCode !== null) return
    proc.kill('SIGTERM')
    const t = setTimeout(() => proc.kill('SIGKILL'), 2000)
    await exited
    clearTimeout(t)
  }
  return new Promise((resolve, reject) => {
    let out = ''
    const fail = (why: string): void => { clearTimeout(timer); void stop(); reject(new Error(why)) }
    const timer = setTimeout(() => fail(`redis-server on port ${port} not ready after 5 s: ${out.slice(-300)}`), 5000)
    const onData = (d: Buffer): void => {
      out += d.toString()
      if (out.includes('Ready to accept connections')) {
        clearTimeout(timer)
        proc.stdout!.off('data', onData)
        proc.stdout!.resume()
        resolve({ url: `redis://127.0.0.1:${port}`, pid: proc.pid!, stop })
      }
    }
    proc.stdout!.on('data', onData)
    proc.stderr!.on('data', (d: Buffer) => { out += d.toString() })
    proc.once('error', (err) => fail(err.message))
    proc.once('exit', (code) => fail(`redis-server exited (${code}): ${out.slice(-300)}`))
  })
}
