/**
 * @module config/idempotency
 * The checks of `idempotency` that one key's schema cannot make: route patterns that cannot be
 * normalised or that name one route twice once normalised, `ttlSeconds` shorter than the longest
 * request a keyed route allows, a WAIT longer than the command timeout.
 */
import type { z } from 'zod'
import type { configSchema } from './schema.js'
import { DEFAULT_POOL, poolNames } from './routing.js'
import { parseRouteMatch } from '../idempotency/routes.js'

type Parsed = z.output<typeof configSchema>

export function idempotencyProblems (c: Parsed): string[] {
  const out: string[] = []
  const i = c.idempotency
  if (i.waitReplicas > 0 && i.waitTimeoutMs >= c.redis.commandTimeoutMs) out.push(`idempotency.waitTimeoutMs: must be below redis.commandTimeoutMs (${c.redis.commandTimeoutMs})`)
  const seen = new Map<string, number>()
  i.routes.forEach((r, n) => {
    let route
    try {
      route = parseRouteMatch(r.match)
    } catch {
      out.push(`idempotency.routes[${n}].match: "${r.match}" has an escape (%2F, %5C, %00 or a malformed %) that cannot be normalised`)
      return
    }
    // the same function as request paths: `POST /orders` and `POST /Orders/` are one route
    const id = `${route.method} ${r.caseSensitive ? route.prefix : route.prefix.toLowerCase()}`
    const first = seen.get(id)
    if (first !== undefined) out.push(`idempotency.routes[${n}].match: "${r.match}" is the route of idempotency.routes[${first}] ("${i.routes[first]!.match}") spelled otherwise`)
    else seen.set(id, n)
    const longest = longestRequest(c, route.method)
    if (longest !== undefined && i.ttlSeconds * 1000 < longest.ms) {
      out.push(`idempotency.ttlSeconds: ${i.ttlSeconds} s is shorter than a request on "${r.match}" (idempotency.routes[${n}]) may run: ${longest.where} is ${longest.ms} ms; a retry after it would find no record and execute again`)
    }
  })
  return out
}

/**
 * The longest `timeouts.requestMs` of the pools a request with this method can reach. Routing
 * matches the path as sent (`/reports/../orders` starts with `/reports`), so only a route's methods
 * rule it out: every other route's pool counts, and the default pool for requests no route takes.
 */
function longestRequest (c: Parsed, method: string): { ms: number, where: string } | undefined {
  const names = poolNames(c)
  let best: { ms: number, where: string } | undefined
  const consider = (pool: string): void => {
    if (!names.has(pool)) return
    const own = c.pools[pool]?.timeouts?.requestMs
    const ms = own ?? c.timeouts.requestMs
    if (best === undefined || ms > best.ms) best = { ms, where: own === undefined ? `timeouts.requestMs (pool "${pool}")` : `pools.${pool}.timeouts.requestMs` }
  }
  consider(DEFAULT_POOL)
  for (const r of c.routes) if (r.pool !== undefined && (r.match.methods === undefined || r.match.methods.includes(method))) consider(r.pool)
  return best
}
