/**
 * @module config/load
 * File + flags + environment → one validated, frozen Config. Every problem is reported with its path.
 */
import { readFileSync } from 'node:fs'
import { parse as parseYaml } from 'yaml'
import type { z } from 'zod'
import { configSchema, type Config, type PoolSettings } from './schema.js'
import { resolvePools, routingProblems, workerCountOf } from './routing.js'
import { ConfigError } from './error.js'
import { idempotencyProblems } from './idempotency.js'

export { ConfigError }

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379'

/** The default local Redis; CLAYLB_DEFAULT_REDIS_URL moves it (tests on a machine whose 6379 is taken). */
export function defaultRedisUrl (env: NodeJS.ProcessEnv = process.env): string {
  return env['CLAYLB_DEFAULT_REDIS_URL'] || DEFAULT_REDIS_URL
}

/** Settings given on the command line; each overrides the file. */
export interface ConfigOverrides {
  host?: string
  port?: number
  adminPort?: number
  upstreams?: string[]
  workers?: number
  app?: string
  redis?: string
  processes?: 'auto' | number
}

export function readConfigFile (file: string): unknown {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    throw new ConfigError([`cannot read ${file}: ${(err as Error).message}`], file)
  }
  try {
    // YAML is a superset of JSON, so one parser reads both.
    return parseYaml(text) ?? {}
  } catch (err) {
    throw new ConfigError([`not valid YAML/JSON: ${(err as Error).message.split('\n')[0]}`], file)
  }
}

export function formatIssues (issues: readonly z.core.$ZodIssue[]): string[] {
  const out: string[] = []
  for (const issue of issues) {
    const base = issue.path.map(String).join('.')
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) out.push(`${base ? `${base}.` : ''}${key}: unknown key`)
    } else {
      out.push(`${base || '(root)'}: ${issue.message}`)
    }
  }
  return out
}

function applyOverrides (raw: Record<string, unknown>, o: ConfigOverrides): Record<string, unknown> {
  const merged: Record<string, unknown> = { ...raw }
  const section = (name: string): Record<string, unknown> => {
    const cur = merged[name]
    const copy = cur && typeof cur === 'object' && !Array.isArray(cur) ? { ...(cur as Record<string, unknown>) } : {}
    merged[name] = copy
    return copy
  }
  if (o.host !== undefined) section('listen')['host'] = o.host
  if (o.port !== undefined) section('listen')['port'] = o.port
  if (o.processes !== undefined) section('listen')['processes'] = o.processes
  if (o.adminPort !== undefined) section('admin')['port'] = o.adminPort
  if (o.upstreams?.length) merged['upstreams'] = o.upstreams.map((url) => ({ url }))
  if (o.workers !== undefined) section('workers')['count'] = o.workers
  if (o.app !== undefined) section('workers')['app'] = o.app
  if (o.redis !== undefined) section('redis')['url'] = o.redis
  return merged
}

/** Validate a raw config object (file contents merged with flags) and freeze the result. */
export function buildConfig (raw: unknown, overrides: ConfigOverrides = {}, env: NodeJS.ProcessEnv = process.env, source?: string): Config {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError(['(root): must be a mapping of settings'], source)
  }
  const result = configSchema.safeParse(applyOverrides(raw as Record<string, unknown>, overrides))
  if (!result.success) throw new ConfigError(formatIssues(result.error.issues), source)
  const c = result.data
  const problems = [...idempotencyProblems(c), ...routingProblems(c)]
  if (problems.length > 0) throw new ConfigError(problems, source)
  const pools: Record<string, PoolSettings> = resolvePools(c)
  const resolved = {
    ...c,
    pools,
    workers: { ...c.workers, count: workerCountOf(c) },
    redis: { ...c.redis, url: c.redis.url ?? (env['REDIS_URL'] || defaultRedisUrl(env)) },
    engine: c.engine ?? engineFromEnv(env, source),
    listen: { ...c.listen, processes: c.listen.processes ?? processesFromEnv(env, source) },
  }
  if (c.listen.http2 && c.listen.tls === undefined) {
    throw new ConfigError(['listen.http2: needs listen.tls (HTTP/2 is offered by ALPN over TLS; cleartext h2c is not served)'], source)
  }
  return deepFreeze(resolved) as Config
}

function processesFromEnv (env: NodeJS.ProcessEnv, source?: string): 'auto' | number {
  const v = env['CLAYLB_PROCESSES']
  if (v === undefined || v === '' || v === 'auto') return 'auto'
  const n = Number(v)
  if (Number.isInteger(n) && n >= 1 && n <= 256) return n
  throw new ConfigError([`CLAYLB_PROCESSES: must be "auto" or an integer from 1 to 256 (got ${JSON.stringify(v)})`], source)
}

function engineFromEnv (env: NodeJS.ProcessEnv, source?: string): 'auto' | 'raw' {
  const v = env['CLAYLB_ENGINE']
  if (v === undefined || v === '') return 'auto'
  if (v === 'auto' || v === 'raw') return v
  throw new ConfigError([`CLAYLB_ENGINE: must be "auto" or "raw" (the "node" engine was removed: the raw engine runs every feature; got ${JSON.stringify(v)})`], source)
}

export function loadConfig (file: string | undefined, overrides: ConfigOverrides = {}, env: NodeJS.ProcessEnv = process.env): Config {
  const raw = file ? readConfigFile(file) : {}
  return buildConfig(raw, overrides, env, file)
}

function deepFreeze<T> (o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o)
    for (const v of Object.values(o)) deepFreeze(v)
  }
  return o
}
