/**
 * @module routing/reload-plan
 * Which changes of a re-read config a running claylb can take, and which it cannot. Live: upstreams,
 * pools, routes, trusted forwarders, rate limits and access rules, balancing, health checks, outlier detection, panic, retries,
 * timeouts, limits, the workers (a new generation rolls in), idempotency routes, and the TLS
 * certificates (`listen.tls`, re-read by the listener). Not live: the other listener and admin
 * settings, TLS turned on or off on the listener, the upstream TLS settings (`tls`, and a kept pool's
 * own `pools.NAME.tls`: the connection pools are built with them), Redis, the engine, logging, tracing (the exporter is built once), and the rest of `idempotency` (the gate
 * and its store are built once); a reload that changes any of those is refused whole, naming each key.
 */
import type { Config } from '../../shared/config/schema.js'

/** key prefixes a reload cannot apply (a dotted key matches its own prefix and everything under it) */
const NOT_LIVE = ['listen', 'admin', 'redis', 'engine', 'log', 'tracing', 'idempotency', 'tls']
/** exceptions inside those */
const LIVE_INSIDE = ['listen.tls', 'idempotency.routes']
/** keys load.ts derives, never written: their source key is named instead (redis.source: redis.url, …) */
const DERIVED = ['redis.source']

/** the dotted keys (arrays as a whole) whose values differ */
export function changedKeys (a: unknown, b: unknown, prefix = ''): string[] {
  const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v)
  if (!isObj(a) || !isObj(b)) return JSON.stringify(a) === JSON.stringify(b) ? [] : [prefix]
  const out: string[] = []
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) out.push(...changedKeys(a[k], b[k], prefix === '' ? k : `${prefix}.${k}`))
  return out
}

const under = (key: string, prefix: string): boolean => key === prefix || key.startsWith(`${prefix}.`)

/**
 * The changed keys a reload cannot apply. idempotency.routes appearing or going cannot either: the
 * gate and its Redis connection are made at start, or not at all.
 */
export function notLiveChanges (from: Config, to: Config): string[] {
  const keys = changedKeys(from, to).filter((k) => NOT_LIVE.some((p) => under(k, p)) && !LIVE_INSIDE.some((p) => under(k, p)) && !DERIVED.includes(k))
  if ((from.idempotency.routes.length === 0) !== (to.idempotency.routes.length === 0)) keys.push('idempotency.routes')
  // a plain listener cannot become a TLS one, nor the reverse: only the certificates change live
  if ((from.listen.tls === undefined) !== (to.listen.tls === undefined)) keys.push('listen.tls')
  // a pool that stays keeps its connections, made with its tls: a change there is not live either
  // (pools.*.tls also moves with the top-level tls, which is refused as `tls` already)
  if (!keys.some((k) => under(k, 'tls'))) {
    for (const name of Object.keys(to.pools)) {
      const a = from.pools[name]?.tls
      if (a !== undefined && JSON.stringify(a) !== JSON.stringify(to.pools[name]!.tls)) keys.push(`pools.${name}.tls`)
    }
  }
  return keys
}
