/**
 * @module data/policy/policy
 * The access rules and rate limits of one config, compiled; part of the routing state (one
 * reference, swapped whole by a reload). Null when neither is configured, so a request pays one
 * null check. Access is judged when the head is parsed (403 before anything else is decided); the
 * limits when the request's turn comes (data/policy/leases: at once, or after its key's lease
 * arrives), each matching limit taking a token, in order; the first that refuses answers 429.
 */
import type { Config } from '../../shared/config/schema.js'
import type { ProxyError } from '../../shared/errors.js'
import type { TakeTokens } from '../../shared/redis/rate-limit-script.js'
import { Tally } from '../upstream/host-counters.js'
import { AccessRule } from './access.js'
import { clientAddress } from './client-address.js'
import { DirectStore, LeaseStore, PENDING, type LimitStore, type LimitWaiter } from './leases.js'
import { RateLimit } from './rate-limit.js'

/** what the policies read of a request, and how they answer it */
export interface PolicedExchange extends LimitWaiter {
  readonly method: string
  readonly path: string
  /** the path before stripPrefix ('' when it was not stripped): limits match what the client sent */
  readonly clientPath: string
  readonly hostHeader: string
  readonly rawHeaders: readonly string[]
  readonly conn: { readonly remoteAddress: string, readonly trusted: boolean }
  /** the limit a pending decision belongs to (its index in Policy.limits) */
  limitIndex: number
  fail (err: ProxyError): void
}

/** refusals, by limit name, and access denials: added to by the request path, read by metrics */
export class LimitTally {
  readonly rateLimited = new Map<string, Tally>()
  readonly accessDenied = new Tally()
  /** round trips to a limit's store (Redis, or the primary), by limit name */
  readonly takes = new Map<string, Tally>()

  limit (name: string, of: Map<string, Tally> = this.rateLimited): Tally {
    let t = of.get(name)
    if (t === undefined) of.set(name, t = new Tally())
    return t
  }
}

/** where tokens come from: Redis for `global`; for `local`, the primary (proxy processes) or null (a single process: here) */
export interface TokenSources {
  global: () => TakeTokens
  local: TakeTokens | null
  /** a global store's failed take (the log says so once per outage, not per request) */
  onStateError?: (err: unknown) => void
}

export class Policy {
  constructor (readonly access: readonly AccessRule[], readonly limits: readonly RateLimit[], private readonly tally: LimitTally) {}

  /** an access rule refuses this request (counted) */
  denies (ex: PolicedExchange): boolean {
    const raw = ex.rawHeaders
    let addr: string | undefined
    for (let i = 0; i < this.access.length; i++) {
      const r = this.access[i]!
      if (!r.match.matches(ex.method, ex.path, ex.hostHeader, raw)) continue
      addr ??= clientAddress(ex.conn.remoteAddress, ex.conn.trusted, raw)
      if (!r.permits(addr)) {
        this.tally.accessDenied.inc()
        return true
      }
    }
    return false
  }

  /**
   * Take a token of every matching limit from limits[from] on: true when all admitted at once; false
   * when one refused (the exchange was answered 429) or is pending (the exchange's limitDecided
   * follows, then `resume`).
   */
  admit (ex: PolicedExchange, from: number): boolean {
    const raw = ex.rawHeaders
    const path = ex.clientPath === '' ? ex.path : ex.clientPath
    let addr: string | undefined
    for (let i = from; i < this.limits.length; i++) {
      const l = this.limits[i]!
      if (!l.match.matches(ex.method, path, ex.hostHeader, raw)) continue
      if (l.byAddress) addr ??= clientAddress(ex.conn.remoteAddress, ex.conn.trusted, raw)
      const key = l.keyOf(addr ?? '', raw)
      if (key === undefined) continue
      const r = l.store.take(key, ex)
      if (r === 0) continue
      if (r === PENDING) {
        ex.limitIndex = i
        return false
      }
      this.refuse(ex, l, r)
      return false
    }
    return true
  }

  /** a pending limit decided: true when this and every later limit admitted (else answered or pending again) */
  resume (ex: PolicedExchange, waitMs: number): boolean {
    const l = this.limits[ex.limitIndex]!
    if (waitMs > 0) {
      this.refuse(ex, l, waitMs)
      return false
    }
    return this.admit(ex, ex.limitIndex + 1)
  }

  private refuse (ex: PolicedExchange, l: RateLimit, waitMs: number): void {
    l.refused.inc()
    ex.fail(l.refusal(waitMs))
  }

  /** the stores `next` does not keep */
  retire (next: Policy | null): void {
    const kept = new Set(next?.limits.map((l) => l.store))
    for (const l of this.limits) if (!kept.has(l.store)) l.store.close()
  }
}

/** the policy of `config` (null: nothing configured); a limit whose bucket settings did not change keeps its store of `previous` */
export function buildPolicy (config: Pick<Config, 'access' | 'rateLimits'>, tally: LimitTally, sources: TokenSources, previous: Policy | null): Policy | null {
  if (config.access.length === 0 && config.rateLimits.length === 0) {
    previous?.retire(null)
    return null
  }
  const old = new Map<string, LimitStore>()
  for (const l of previous?.limits ?? []) old.set(l.storeKey, l.store)
  const limits = config.rateLimits.map((c) => new RateLimit(c, tally.limit(c.name), (l) => {
    const kept = old.get(l.storeKey)
    if (kept !== undefined) return kept
    const takes = tally.limit(c.name, tally.takes)
    if (c.scope === 'global') return new LeaseStore(l, sources.global(), c.onStateDown, takes, sources.onStateError)
    return sources.local === null ? new DirectStore(l) : new LeaseStore(l, sources.local, 'allow', takes)
  }))
  const policy = new Policy(config.access.map((r) => new AccessRule(r)), limits, tally)
  previous?.retire(policy)
  return policy
}
