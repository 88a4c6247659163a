/**
 * @module config/load
 * File + flags + environment → one validated, frozen Config. Every problem is reported with its path.
 */
import { readFileSync } from 'node:fs'
import { resolve as resolvePath } from 'node:path'
import { parseDocument } from 'yaml'
import type { z } from 'zod'
import { configSchema, type Config, type PoolSettings, type RedisSource } from './schema.js'
import { resolvePools, routingProblems, splitUpstreams, workerCountOf } from './routing.js'
import { policyProblems } from './policy.js'
import { ConfigError } from './error.js'
import { closestKey, knownKeysAt, withoutInvalid } from './issues.js'
import { resolveAdmin } from './admin.js'
import { resolveRedisPassword } from './redis-password.js'
import { ACCEPT_GRACE_MS } from '../defaults.js'
import { idempotencyProblems } from './idempotency.js'

export { ConfigError }
export type { RedisSource }

function redisSourceOf (c: { url?: string | undefined, cluster?: unknown, sentinel?: unknown }, env: NodeJS.ProcessEnv): RedisSource {
  if (c.cluster !== undefined) return 'cluster'
  if (c.sentinel !== undefined) return 'sentinel'
  if (c.url !== undefined) return 'config'
  return env['REDIS_URL'] ? 'REDIS_URL' : 'none'
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
  // YAML is a superset of JSON, so one parser reads both; every error, each with its line and column
  const doc = parseDocument(text, { prettyErrors: true })
  if (doc.errors.length > 0) throw new ConfigError(doc.errors.map((e) => `not valid YAML/JSON: ${e.message}`), file)
  try {
    return doc.toJS() ?? {}
  } catch (err) {
    // what only building the value finds (an alias bomb past the alias limit)
    throw new ConfigError([`not valid YAML/JSON: ${(err as Error).message}`], file)
  }
}

export function formatIssues (issues: readonly z.core.$ZodIssue[], schema: z.ZodType = configSchema): string[] {
  const out: string[] = []
  for (const issue of issues) {
    const base = issue.path.map(String).join('.')
    if (issue.code === 'unrecognized_keys') {
      const known = knownKeysAt(schema, issue.path)
      for (const key of issue.keys) {
        const near = closestKey(key, known)
        out.push(`${base ? `${base}.` : ''}${key}: unknown key${near === undefined ? '' : ` (did you mean ${base ? `${base}.` : ''}${near}?)`}`)
      }
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
  const merged = applyOverrides(raw as Record<string, unknown>, overrides)
  const result = configSchema.safeParse(merged)
  const problems = result.success ? [] : formatIssues(result.error.issues)
  // with schema problems, the checks across keys still run on what is valid (the bad values taken
  // out, defaults in their place), so one report lists every problem of the file
  const rest = result.success ? undefined : withoutInvalid(merged, result.error.issues)
  const checked = result.success ? result : rest === undefined ? undefined : configSchema.safeParse(rest)
  if (checked === undefined || !checked.success) throw new ConfigError(problems, source)
  const { shutdownTimeoutMs, ...c } = checked.data
  const [admin, adminProblems] = resolveAdmin(c.admin, env)
  // no implicit Redis: the configured one, else $REDIS_URL, else '' (a private redis-server where one is needed)
  const [redis, redisProblems, redisDeprecations] = resolveRedisPassword({ ...c.redis, url: c.redis.url ?? env['REDIS_URL'] ?? '' }, env)
  problems.push(...crossKeyProblems(c), ...adminProblems, ...redisProblems)
  if (problems.length > 0) throw new ConfigError(problems, source)
  const pools: Record<string, PoolSettings> = resolvePools(c)
  const resolved = {
    ...c,
    ...splitUpstreams(c.upstreams),
    admin,
    pools,
    workers: { ...c.workers, count: workerCountOf(c) },
    redis: {
      ...redis,
      source: redisSourceOf(c.redis, env),
      // absolute: the workers run in their own directories and read the file too
      ...(c.redis.passwordFile !== undefined ? { passwordFile: resolvePath(c.redis.passwordFile) } : {}),
      ...(redis.sentinel?.passwordFile !== undefined ? { sentinel: { ...redis.sentinel, passwordFile: resolvePath(redis.sentinel.passwordFile) } } : {}),
    },
    engine: c.engine ?? engineFromEnv(env, source),
    deprecations: [...engineDeprecations(c.engine, env), ...redisDeprecations],
    listen: { ...c.listen, processes: c.listen.processes ?? processesFromEnv(env, source) },
    shutdown: {
      acceptGraceMs: c.shutdown.acceptGraceMs ?? acceptGraceFromEnv(env, source),
      // never shorter than a request may take: a drain that cuts requests the limits allow loses them
      timeoutMs: c.shutdown.timeoutMs ?? shutdownTimeoutMs ?? Math.max(c.timeouts.requestMs, ...Object.values(pools).map((p) => p.timeouts.requestMs)),
    },
  }
  return deepFreeze(resolved) as Config
}

/** what one key's schema cannot check: keys that must agree with each other */
function crossKeyProblems (c: z.output<typeof configSchema>): string[] {
  const out: string[] = []
  out.push(...idempotencyProblems(c))
  if (c.dns.minRefreshMs > c.dns.maxRefreshMs) out.push(`dns.minRefreshMs: must not exceed dns.maxRefreshMs (${c.dns.maxRefreshMs})`)
  out.push(...routingProblems(c))
  out.push(...policyProblems(c))
  if (c.listen.http2 && c.listen.tls === undefined) {
    out.push('listen.http2: needs listen.tls (HTTP/2 is offered by ALPN over TLS; cleartext h2c is not served)')
  }
  return out
}

function processesFromEnv (env: NodeJS.ProcessEnv, source?: string): 'auto' | number {
  const v = env['CLAYLB_PROCESSES']
  if (v === undefined || v === '' || v === 'auto') return 'auto'
  const n = Number(v)
  if (Number.isInteger(n) && n >= 1 && n <= 256) return n
  throw new ConfigError([`CLAYLB_PROCESSES: must be "auto" or an integer from 1 to 256 (got ${JSON.stringify(v)})`], source)
}

function acceptGraceFromEnv (env: NodeJS.ProcessEnv, source?: string): number {
  const v = env['CLAYLB_ACCEPT_GRACE_MS']
  if (v === undefined || v === '') return ACCEPT_GRACE_MS
  const n = Number(v)
  if (Number.isInteger(n) && n >= 0) return n
  throw new ConfigError([`CLAYLB_ACCEPT_GRACE_MS: must be a non-negative integer of milliseconds (got ${JSON.stringify(v)})`], source)
}

function engineFromEnv (env: NodeJS.ProcessEnv, source?: string): 'auto' | 'raw' {
  const v = env['CLAYLB_ENGINE']
  if (v === undefined || v === '') return 'auto'
  if (v === 'auto' || v === 'raw') return v
  throw new ConfigError([`CLAYLB_ENGINE: must be "auto" or "raw" (the "node" engine was removed: the raw engine runs every feature; got ${JSON.stringify(v)})`], source)
}

/** the removed engine choice: still accepted so no config breaks, but it chooses nothing */
function engineDeprecations (key: string | undefined, env: NodeJS.ProcessEnv): string[] {
  const out: string[] = []
  const why = 'is deprecated and does nothing (the raw engine is the only one); remove it'
  if (key !== undefined) out.push(`engine: ${why}`)
  if (env['CLAYLB_ENGINE']) out.push(`CLAYLB_ENGINE: ${why}`)
  return out
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
