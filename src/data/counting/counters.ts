/**
 * @module data/counting/counters
 * What a data plane counts, as plain numbers: per-host request counters (HostCounters, bound to each
 * host when it joins a pool), the retry tally, the idempotency outcomes, the session store's and
 * Redis's failures, Redis command latencies. The request path only adds to these; the control
 * plane's registry (control/metrics) lays them out at scrape time, and a proxy process sends them to
 * the primary as a CountersExport when asked. No prom-client here: a proxy process never loads it
 * for its counters.
 */
import type { Host, PanicRouting } from '../upstream/host.js'
import { newRetryTally, type RetryTally, type TryOutcome } from '../upstream/retry-policy.js'
import { bucketOf, HostCounters, OUTCOME_INDEX, Tally } from '../upstream/host-counters.js'
import type { CommandTimer, RedisTiming } from '../../shared/idempotency/redis-store.js'
import type { CountersExport, HistogramRow, HostCountersExport } from '../../shared/process/protocol.js'
import { LimitTally } from '../policy/policy.js'
import { policyTally } from '../policy/tally.js'

/** the `upstream` label of requests that never reached one (no healthy upstream, bad request) */
export const NO_UPSTREAM = 'none'
export const IDEMPOTENCY_OUTCOMES = ['executed', 'replayed', 'conflict', 'mismatch', 'outcome_unknown', 'key_missing', 'key_invalid', 'request_invalid', 'state_unavailable', 'not_stored'] as const
export type IdempotencyOutcome = typeof IDEMPOTENCY_OUTCOMES[number]
export const SESSION_OPERATIONS = ['load', 'save', 'destroy', 'touch'] as const
export type SessionOperation = typeof SESSION_OPERATIONS[number]
/** Redis command latency buckets, seconds */
export const REDIS_BUCKETS_SECONDS: readonly number[] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1]

/** the series key of a host's or a route's counters: the same name in two pools is two series */
export const seriesKey = (pool: string, name: string): string => `${pool}\n${name}`

/** `c` added into `m`, slot by slot (a remote process's counters into the primary's totals) */
export function addCounters (m: { codes: ArrayLike<number> & { [i: number]: number }, buckets: ArrayLike<number> & { [i: number]: number }, tries: ArrayLike<number> & { [i: number]: number }, durationSum: number, count: number }, c: { codes: ArrayLike<number>, buckets: ArrayLike<number>, durationSum: number, count: number, tries: ArrayLike<number> }): void {
  for (let i = 0; i < m.codes.length; i++) m.codes[i] = m.codes[i]! + (c.codes[i] ?? 0)
  for (let i = 0; i < m.buckets.length; i++) m.buckets[i] = m.buckets[i]! + (c.buckets[i] ?? 0)
  for (let i = 0; i < m.tries.length; i++) m.tries[i] = m.tries[i]! + (c.tries[i] ?? 0)
  m.durationSum += c.durationSum
  m.count += c.count
}

/** plain numbers of counters (what a proxy process sends the primary) */
function exportOf (m: HostCounters): HostCountersExport {
  return { upstream: m.upstream, pool: m.pool, codes: [...m.codes], buckets: [...m.buckets], durationSum: m.durationSum, count: m.count, tries: [...m.tries] }
}

/** every host a data plane routes to (all pools), and whether any pool is in panic */
export interface HostsView {
  readonly hosts: readonly Host[]
  readonly panic: PanicRouting
  onChange (fn: () => void): unknown
}

/** One Redis command's latencies, added to as plain numbers by the store, laid out at scrape time. */
class CommandCounters implements CommandTimer, HistogramRow {
  readonly buckets = new Float64Array(REDIS_BUCKETS_SECONDS.length + 1)
  sum = 0
  count = 0
  constructor (readonly label: string) {}
  observe (seconds: number): void {
    this.buckets[bucketOf(REDIS_BUCKETS_SECONDS, seconds)]!++
    this.sum += seconds
    this.count++
  }
}

export class Counters {
  readonly none = new HostCounters(NO_UPSTREAM)
  /** every pool's retry counters */
  readonly retries: RetryTally = newRetryTally()
  /** `counters.idempotency.replayed.inc()` */
  readonly idempotency = Object.fromEntries(IDEMPOTENCY_OUTCOMES.map((o) => [o, new Tally()])) as Record<IdempotencyOutcome, Tally>
  /** in-flight claims whose owner found them gone (lease ran out) when renewing or completing */
  readonly idempotencyLeaseExpiries = new Tally()
  /** executions whose upstream died after receiving the request (records marked outcome-unknown) */
  readonly idempotencyUnknownOutcomes = new Tally()
  /** `counters.sessionStore.save.inc()` on a failed session store operation */
  readonly sessionStore = Object.fromEntries(SESSION_OPERATIONS.map((o) => [o, new Tally()])) as Record<SessionOperation, Tally>
  readonly redisErrors = new Tally()
  /** redirects, rewrites, compression: the process's one tally (data/policy/tally) */
  readonly policy = policyTally
  /** per seriesKey(pool, upstream label): an upstream listed in two pools is two hosts */
  readonly byHost = new Map<string, HostCounters>()
  /** per seriesKey(pool, route name): made when a routing state is built, held by its Route */
  readonly byRoute = new Map<string, HostCounters>()
  /** access denials, rate-limit refusals and each limit's store round trips (data/policy/policy) */
  readonly limits = new LimitTally()
  readonly redisCommands = new Map<string, CommandCounters>()
  /** what the idempotency store times its commands and counts its failures with (plain numbers) */
  readonly redisTiming: RedisTiming = { command: (name) => this.redisCommand(name), error: () => this.redisErrors.inc() }

  /** binds every host of `hosts` (and each that joins later) to its counters */
  constructor (hosts: HostsView) {
    for (const h of hosts.hosts) this.bind(h)
    hosts.onChange(() => { for (const h of hosts.hosts) if (h.metrics === null) this.bind(h) })
  }

  /** Give a host its counters; a host under a known label in its pool (a worker's slot, a returning id) continues its series. */
  private bind (h: Host): void {
    const key = seriesKey(h.pool, h.metricsLabel)
    let m = this.byHost.get(key)
    if (m === undefined) {
      m = new HostCounters(h.metricsLabel, h.pool)
      this.byHost.set(key, m)
    }
    h.metrics = m
  }

  /**
   * The counters of a route (`name`: routes[].name, its index, or `default`) to `pool` ('' for a
   * redirect route, which has none): resolved once when a routing state is built and held by its
   * Route, so a request does no lookup. A reload that keeps the name and pool continues the series.
   * Names come from the config: bounded.
   */
  routeCounters (name: string, pool: string): HostCounters {
    const key = seriesKey(pool, name)
    let m = this.byRoute.get(key)
    if (m === undefined) this.byRoute.set(key, m = new HostCounters(name, pool))
    return m
  }

  /** A latency recorder for one Redis command name (hold it; names must come from code, not input). */
  redisCommand (command: string): CommandTimer {
    let c = this.redisCommands.get(command)
    if (c === undefined) {
      c = new CommandCounters(command)
      this.redisCommands.set(command, c)
    }
    return c
  }

  // ---- the request path ----

  tryEnded (host: Host, outcome: TryOutcome): void {
    const m = host.metrics
    if (m !== null) m.tries[OUTCOME_INDEX[outcome]]!++
  }

  requestEnded (host: Host | undefined, route: HostCounters | null, status: number, durationMs: number): void {
    const s = durationMs / 1000
    if (route !== null) route.request(status, s)
    ;((host === undefined ? null : host.metrics) ?? this.none).request(status, s)
  }

  /** requests answered so far (every upstream, and claylb's own answers) */
  requestsTotal (): number {
    let n = this.none.count
    for (const m of this.byHost.values()) n += m.count
    return n
  }

  /** these counters as plain numbers (a proxy process's answer to the primary's scrape) */
  export (inflight: number): CountersExport {
    const hosts = [this.none, ...this.byHost.values()].map(exportOf)
    const routes = [...this.byRoute.values()].map(exportOf)
    const tallies = <K extends string>(r: Record<K, Tally>): Record<string, number> => Object.fromEntries(Object.entries<Tally>(r).map(([k, t]) => [k, t.value]))
    return {
      hosts,
      routes,
      retried: { ...this.retries.retried },
      overflow: this.retries.overflow,
      overloaded: Object.fromEntries(Object.entries(this.retries.overloaded).map(([p, r]) => [p, { ...r }])),
      inflight,
      idempotency: tallies(this.idempotency),
      idempotencyLeaseExpiries: this.idempotencyLeaseExpiries.value,
      idempotencyUnknownOutcomes: this.idempotencyUnknownOutcomes.value,
      sessionStore: tallies(this.sessionStore),
      redisErrors: this.redisErrors.value,
      redisCommands: [...this.redisCommands.values()].map((c) => ({ label: c.label, buckets: [...c.buckets], sum: c.sum, count: c.count })),
      policy: { ...this.policy, redirects: { ...this.policy.redirects }, compressed: { ...this.policy.compressed }, compressedIn: { ...this.policy.compressedIn }, compressedOut: { ...this.policy.compressedOut } },
      rateLimited: byName(this.limits.rateLimited),
      accessDenied: this.limits.accessDenied.value,
      limitTakes: byName(this.limits.takes),
    }
  }
}

/** a map of tallies as plain numbers */
export function byName (m: ReadonlyMap<string, Tally>): Record<string, number> {
  return Object.fromEntries([...m].map(([k, t]) => [k, t.value]))
}
