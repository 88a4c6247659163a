/**
 * @module config/routing
 * The checks and merges of `pools`, `routes` and `trustedProxies` that one key's schema cannot make:
 * a route naming a pool that does not exist, a reserved pool name, a CIDR that does not parse; and
 * each pool's sections merged over the top level's (a pool inherits what it leaves out).
 */
import { isIP } from 'node:net'
import type { z } from 'zod'
import type { configSchema, DnsUpstream, PoolSettings, StaticUpstream } from './schema.js'
import { NOT_REWRITABLE } from './header-rewrite.js'
import { Redirect } from '../policy/redirect.js'
import { Rewrite } from '../policy/rewrite.js'

type Parsed = z.output<typeof configSchema>

/** the top-level `upstreams` (or, without them, the workers) */
export const DEFAULT_POOL = 'default'
/** the spawned workers */
export const WORKERS_POOL = 'workers'

/** workers.count unset: none when upstreams or pools are given, else 4 */
export function workerCountOf (c: Parsed): number {
  return c.workers.count ?? (c.upstreams.length > 0 || Object.keys(c.pools).length > 0 ? 0 : 4)
}

/** the top-level upstreams make a default pool, `url` or `dns` ones */
export function hasUpstreams (c: { upstreams: readonly unknown[], dnsUpstreams: readonly unknown[] }): boolean {
  return c.upstreams.length > 0 || c.dnsUpstreams.length > 0
}

/** the pool names a route may use */
export function poolNames (c: Parsed): Set<string> {
  const names = new Set(Object.keys(c.pools))
  const workers = workerCountOf(c) > 0
  if (c.upstreams.length > 0 || workers) names.add(DEFAULT_POOL)
  if (workers) names.add(WORKERS_POOL)
  return names
}

export function routingProblems (c: Parsed): string[] {
  const out: string[] = []
  for (const name of [DEFAULT_POOL, WORKERS_POOL]) {
    if (name in c.pools) out.push(`pools.${name}: "${name}" is reserved (${name === DEFAULT_POOL ? 'the top-level upstreams' : 'the spawned workers'})`)
  }
  // an id names one host of its pool (metrics, the admin drain): twice in one pool is ambiguous
  const uniqueIds = (upstreams: Parsed['upstreams'], at: string): void => {
    const ids = new Set<string>()
    upstreams.forEach((u, i) => {
      if (u.url === undefined) return
      const id = u.id ?? new URL(u.url).host
      if (ids.has(id)) out.push(`${at}[${i}]: id "${id}" appears twice in this pool`)
      ids.add(id)
    })
  }
  uniqueIds(c.upstreams, 'upstreams')
  for (const [name, p] of Object.entries(c.pools)) uniqueIds(p.upstreams, `pools.${name}.upstreams`)
  const balancers: Array<[string, { policy: string, on?: string | undefined } | undefined]> = [['balancer', c.balancer]]
  for (const [name, p] of Object.entries(c.pools)) balancers.push([`pools.${name}.balancer`, p.balancer === undefined ? undefined : { ...c.balancer, ...defined(p.balancer) }])
  for (const [path, b] of balancers) {
    if (b === undefined) continue
    if (b.policy === 'consistent-hash' && b.on === undefined) out.push(`${path}.on: consistent-hash needs what to hash: "header:NAME", "cookie:NAME", "ip" or "path"`)
  }
  const limits: Array<[string, { maxPending?: number | undefined, maxConnectionsPerHost?: number | undefined } | undefined]> = [['limits', c.limits]]
  for (const [name, p] of Object.entries(c.pools)) limits.push([`pools.${name}.limits`, p.limits === undefined ? undefined : { ...c.limits, ...defined(p.limits) }])
  for (const [path, l] of limits) {
    if (l?.maxPending !== undefined && l.maxConnectionsPerHost === undefined) out.push(`${path}.maxPending: requests wait only for a connection: set maxConnectionsPerHost too`)
  }
  if (c.listen.proxyProtocol && c.trustedProxies.length === 0) out.push('listen.proxyProtocol: only trustedProxies may send a PROXY header: list the balancers in front there')
  const routeNames = new Map<string, number>()
  const names = poolNames(c)
  c.routes.forEach((r, i) => {
    if (r.name !== undefined) {
      if (r.name === 'default' || /^[0-9]+$/.test(r.name)) out.push(`routes[${i}].name: "${r.name}" is reserved (the default route's label, or another route's index)`)
      else if (routeNames.has(r.name)) out.push(`routes[${i}].name: "${r.name}" is also routes[${routeNames.get(r.name)}]'s name`)
      routeNames.set(r.name, i)
    }
    out.push(...policyProblems(r, i))
    if (r.pool === undefined) {
      if (r.redirect === undefined) out.push(`routes[${i}].pool: must name a pool (or the route needs a redirect)`)
    } else if (!names.has(r.pool)) {
      const known = [...names].map((n) => `"${n}"`).join(', ')
      out.push(`routes[${i}].pool: unknown pool "${r.pool}"${known ? ` (pools: ${known})` : ' (no pool is configured)'}`)
    }
    if (r.stripPrefix && r.match.pathPrefix === undefined) out.push(`routes[${i}].stripPrefix: needs match.pathPrefix`)
    for (const dir of ['requestHeaders', 'responseHeaders'] as const) {
      const rw = r[dir]
      if (rw === undefined) continue
      for (const n of [...Object.keys(rw.set), ...rw.remove]) {
        if (NOT_REWRITABLE.has(n.toLowerCase())) out.push(`routes[${i}].${dir}: ${n} frames the message; claylb writes it itself`)
      }
    }
  })
  c.trustedProxies.forEach((cidr, i) => {
    if (parseCidr(cidr) === undefined) out.push(`trustedProxies[${i}]: must be a CIDR (10.0.0.0/8, fd00::/8) or an IP address, got ${JSON.stringify(cidr)}`)
  })
  return out
}

/** a route's redirect and rewrite, compiled here once to find what is wrong (route-table compiles them again) */
function policyProblems (r: Parsed['routes'][number], i: number): string[] {
  const out: string[] = []
  if (r.redirect !== undefined) {
    const d = Redirect.compile(r.redirect)
    if (typeof d === 'string') out.push(`routes[${i}].redirect.to: ${d}`)
    // claylb answers a redirect itself: a key that shapes what goes upstream would be silently unused
    for (const k of ['pool', 'rewrite', 'compression', 'requestHeaders', 'responseHeaders'] as const) {
      if (r[k] !== undefined) out.push(`routes[${i}].${k}: a redirect route answers itself (nothing goes upstream); remove ${k} or redirect`)
    }
    if (r.stripPrefix) out.push(`routes[${i}].stripPrefix: a redirect route answers itself (nothing goes upstream); remove stripPrefix or redirect`)
  }
  if (r.rewrite !== undefined) {
    const w = Rewrite.compile(r.rewrite)
    if (!(w instanceof Rewrite)) out.push(`routes[${i}].rewrite.${w.key}: ${w.problem}`)
    if (r.stripPrefix) out.push(`routes[${i}].rewrite: stripPrefix and rewrite both change the path; use one (a rewrite can drop the prefix: pattern ^/api(/.*)$, replace {1})`)
  }
  return out
}

/** "10.0.0.0/8" → [address, prefix, family]; a bare address is a /32 or /128 */
export function parseCidr (s: string): [string, number, 'ipv4' | 'ipv6'] | undefined {
  const slash = s.indexOf('/')
  const addr = slash < 0 ? s : s.slice(0, slash)
  const v = isIP(addr)
  if (v === 0) return undefined
  const max = v === 4 ? 32 : 128
  const prefix = slash < 0 ? max : Number(s.slice(slash + 1))
  if (!/^\d{1,3}$/.test(slash < 0 ? String(max) : s.slice(slash + 1)) || prefix > max) return undefined
  return [addr, prefix, v === 4 ? 'ipv4' : 'ipv6']
}

/** each pool with the top level's sections under its own */
export function resolvePools (c: Parsed): Record<string, PoolSettings> {
  const out: Record<string, PoolSettings> = {}
  for (const [name, p] of Object.entries(c.pools)) {
    out[name] = {
      ...splitUpstreams(p.upstreams),
      balancer: { ...c.balancer, ...defined(p.balancer) },
      healthCheck: { ...c.healthCheck, ...defined(p.healthCheck) },
      outlier: { ...c.outlier, ...defined(p.outlier) },
      retry: { ...c.retry, ...defined(p.retry) },
      timeouts: { ...c.timeouts, ...defined(p.timeouts) },
      tls: { ...c.tls, ...defined(p.tls) },
      limits: { maxInflight: c.limits.maxInflight, maxPending: c.limits.maxPending, maxConnectionsPerHost: c.limits.maxConnectionsPerHost, ...defined(p.limits) },
    }
  }
  return out
}

type ParsedUpstream = Parsed['upstreams'][number]

/** the `url` upstreams and the `dns` ones, apart (the schema checked that each has one or the other) */
export function splitUpstreams (list: readonly ParsedUpstream[]): { upstreams: StaticUpstream[], dnsUpstreams: DnsUpstream[] } {
  const upstreams: StaticUpstream[] = []
  const dnsUpstreams: DnsUpstream[] = []
  for (const u of list) {
    if (u.url !== undefined) upstreams.push({ url: u.url, weight: u.weight, ...(u.id !== undefined ? { id: u.id } : {}) })
    else dnsUpstreams.push({ dns: u.dns!, srv: u.srv ?? false, scheme: u.scheme ?? 'http', weight: u.weight, ...(u.refreshMs !== undefined ? { refreshMs: u.refreshMs } : {}) })
  }
  return { upstreams, dnsUpstreams }
}

function defined<T extends object> (o: T | undefined): Partial<T> {
  if (o === undefined) return {}
  const out: Partial<T> = {}
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v
  return out
}
