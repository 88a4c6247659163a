/**
 * @module metrics/metrics
 * Every Prometheus metric claylb exports, declared here and registered in ONE prom-client Registry.
 *
 * Cost model: the request path only adds to plain numbers (a per-host HostCounters from upstream/host-counters.ts, bound when the host
 * joins the cluster, or a Tally other modules hold); the registry reads them in `collect()` callbacks at
 * scrape time. prom-client's own labelled inc()/observe() hash their labels on every call (≈0.4 µs and
 * ≈1 µs measured), which is why no request calls them. Labels are bounded: upstream id (or worker slot),
 * code class, try outcome, retry reason; never a path.
 *
 * Worker processes report their samples to the supervisor over IPC; the scrape reads the last sample
 * (WorkerMetricsSource) and never waits on a worker, unlike prom-client's AggregatorRegistry.
 */
import { AggregatorRegistry, Counter, Gauge, Registry, collectDefaultMetrics, type MetricObjectWithValues, type MetricValue } from 'prom-client'
import type { Host, PanicRouting } from '../upstream/host.js'
import { RETRY_REASONS, type RetryTally, type TryOutcome } from '../proxy/retry-policy.js'
import { bucketOf, DURATION_BUCKETS_SECONDS, HostCounters, OUTCOME_INDEX, OUTCOMES, Tally } from '../upstream/host-counters.js'
import type { CommandTimer, RedisTiming } from '../idempotency/redis-store.js'

export { DURATION_BUCKETS_SECONDS, Tally }

export const PREFIX = 'claylb_'
const CODE_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const
/** the `upstream` label of requests that never reached one (no healthy upstream, bad request) */
export const NO_UPSTREAM = 'none'

/** What the supervisor knows of one live worker (its last IPC report; never fetched on scrape). */
export interface WorkerSample {
  /** `worker-<slot>`: bounded, a replacement takes its predecessor's slot */
  slot: string
  up: boolean
  /** errors of the session store seen by this worker's runtime */
  sessionStoreErrors?: number
  process?: { cpuSecondsTotal: number, residentMemoryBytes: number, heapUsedBytes: number, eventLoopLagSeconds: number }
}

/** The seam the worker supervisor fills (workers/supervisor.ts). */
export interface WorkerMetricsSource {
  readonly stats: { readonly restarts: number, readonly recycles: number, readonly crashes: number }
  samples (): Iterable<WorkerSample>
}

export const IDEMPOTENCY_OUTCOMES = ['executed', 'replayed', 'conflict', 'mismatch', 'outcome_unknown', 'key_missing', 'key_invalid', 'request_invalid', 'state_unavailable', 'not_stored'] as const
export type IdempotencyOutcome = typeof IDEMPOTENCY_OUTCOMES[number]
export const SESSION_OPERATIONS = ['load', 'save', 'destroy', 'touch'] as const
export type SessionOperation = typeof SESSION_OPERATIONS[number]

/** every host claylb routes to (all pools), and whether any pool is in panic */
export interface HostsView {
  readonly hosts: readonly Host[]
  readonly panic: PanicRouting
  onChange (fn: () => void): unknown
}

/** Redis command latency buckets, seconds */
export const REDIS_BUCKETS_SECONDS: readonly number[] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1]

/** one series of a histogram as plain numbers: `buckets` per bound (not cumulative), last = above every bound */
export interface HistogramRow { label: string, buckets: ArrayLike<number>, sum: number, count: number }

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

/** several processes' series of one histogram as one, bucket by bucket, per label (at scrape time) */
export function sumHistograms (sets: Iterable<Iterable<HistogramRow>>): Array<{ label: string, buckets: number[], sum: number, count: number }> {
  const out = new Map<string, { label: string, buckets: number[], sum: number, count: number }>()
  for (const rows of sets) {
    for (const r of rows) {
      let t = out.get(r.label)
      if (t === undefined) out.set(r.label, t = { label: r.label, buckets: new Array<number>(r.buckets.length).fill(0), sum: 0, count: 0 })
      for (let i = 0; i < r.buckets.length; i++) t.buckets[i] = (t.buckets[i] ?? 0) + r.buckets[i]!
      t.sum += r.sum
      t.count += r.count
    }
  }
  return [...out.values()]
}

/** One process's request-path counters as plain numbers (cores/: a proxy process answers the primary's scrape with it). */
export interface CountersExport {
  /** per `upstream` label: codes (6), buckets, durationSum, count, tries */
  hosts: Array<{ upstream: string, codes: number[], buckets: number[], durationSum: number, count: number, tries: number[] }>
  retried: Record<string, number>
  overflow: number
  inflight: number
  idempotency: Record<string, number>
  idempotencyLeaseExpiries: number
  idempotencyUnknownOutcomes: number
  sessionStore: Record<string, number>
  redisErrors: number
  /** claylb_redis_command_duration_seconds, one row per command (label = command) */
  redisCommands: HistogramRow[]
  /** claylb_rate_limited_total by limit */
  rateLimited: Record<string, number>
  accessDenied: number
  /** claylb_rate_limit_store_takes_total by limit (the leases asked of Redis or the primary) */
  limitTakes: Record<string, number>
}

/** one process's default metrics (process_*, nodejs_*) as prom-client's JSON, labelled by its pid on the primary */
export type ProcessMetricsExport = Array<MetricObjectWithValues<MetricValue<string>>>

export interface MetricsOptions {
  cluster: HostsView
  /** every pool's retry counters */
  retries: RetryTally
  /** requests in flight through the proxy */
  inflight: () => number
  generation: () => number
  /** default process metrics of this process (off in unit tests that build many registries) */
  processMetrics?: boolean
}

export class Metrics {
  readonly registry = new Registry()
  /** prom-client's default metrics of this process, apart so the primary can label them (and each proxy process's) by pid */
  private readonly processRegistry = new Registry()
  readonly none = new HostCounters(NO_UPSTREAM)
  /** `metrics.idempotency.replayed.inc()` */
  readonly idempotency = Object.fromEntries(IDEMPOTENCY_OUTCOMES.map((o) => [o, new Tally()])) as Record<IdempotencyOutcome, Tally>
  /** in-flight claims whose owner found them gone (lease ran out) when renewing or completing */
  readonly idempotencyLeaseExpiries = new Tally()
  /** executions whose upstream died after receiving the request (records marked outcome-unknown) */
  readonly idempotencyUnknownOutcomes = new Tally()
  /** `metrics.sessionStore.save.inc()` on a failed session store operation */
  readonly sessionStore = Object.fromEntries(SESSION_OPERATIONS.map((o) => [o, new Tally()])) as Record<SessionOperation, Tally>
  readonly redisErrors = new Tally()
  workerSource: WorkerMetricsSource | null = null
  /** access denials and rate-limit refusals (data/policy), and each limit's store round trips */
  policySource: { tally: { readonly rateLimited: ReadonlyMap<string, Tally>, readonly accessDenied: Tally }, takes: () => Record<string, number> } | null = null
  /** each `dns` upstream's resolutions (routing/pools.ts), read at scrape time */
  dnsSource: (() => Iterable<{ dns: string, ok: number, failed: number }>) | null = null
  /**
   * the other processes' counters (cores/primary.ts: the proxy processes' last answers, fetched just
   * before the scrape); each series is this process's value plus theirs
   */
  remote: (() => Iterable<CountersExport>) | null = null
  /** the proxy processes (cores/primary.ts); null: this process is the only one */
  processSource: { readonly live: number, readonly restarts: number } | null = null
  /**
   * the proxy processes' default metrics (cores/primary.ts: fetched just before the scrape); when set,
   * every process's `process_*`/`nodejs_*` series, this one's included, carry a `pid` label
   */
  remoteProcesses: (() => Iterable<{ pid: number, metrics: ProcessMetricsExport }>) | null = null
  private readonly byId = new Map<string, HostCounters>()
  private readonly redisCommands = new Map<string, CommandCounters>()
  /** what the idempotency store times its commands and counts its failures with (plain numbers) */
  readonly redisTiming: RedisTiming = { command: (name) => this.redisCommand(name), error: () => this.redisErrors.inc() }

  private readonly retries: RetryTally

  constructor (o: MetricsOptions) {
    this.retries = o.retries
    const registers = [this.registry]
    const cluster = o.cluster
    const redisErrors = this.redisErrors
    const none = this.none
    const hostList = (): HostCounters[] => this.remote === null ? [none, ...this.byId.values()] : this.merged()
    const remoteSum = (read: (c: CountersExport) => number): number => {
      let n = 0
      for (const c of this.remote?.() ?? []) n += read(c)
      return n
    }
    if (o.processMetrics !== false) collectDefaultMetrics({ register: this.processRegistry, prefix: PREFIX })

    /** a counter copied at scrape time from totals kept elsewhere (reset, then one inc per series) */
    const snapshotCounter = <L extends string>(name: string, help: string, labelNames: readonly L[], fill: (add: (labels: Partial<Record<L, string>>, v: number) => void) => void): void => {
      const c: Counter<L> = new Counter({ name, help, labelNames, registers, collect: () => { c.reset(); fill((labels, v) => c.inc(labels, v)) } })
    }
    /** a gauge read at scrape time; series with the same labels add up */
    const snapshotGauge = <L extends string>(name: string, help: string, labelNames: readonly L[], fill: (add: (labels: Partial<Record<L, string>>, v: number) => void) => void): void => {
      const g: Gauge<L> = new Gauge({ name, help, labelNames, registers, collect: () => { g.reset(); fill((labels, v) => g.inc(labels, v)) } })
    }

    // ---- requests ----
    snapshotCounter(`${PREFIX}requests_total`, 'Requests answered, by upstream (none: answered by claylb itself) and status class', ['upstream', 'code_class'], (add) => {
      for (const m of hostList()) {
        for (let c = 1; c <= 5; c++) if (m.codes[c]! > 0 || m.upstream !== NO_UPSTREAM) add({ upstream: m.upstream, code_class: CODE_CLASSES[c - 1]! }, m.codes[c]!)
      }
    })
    this.registry.registerMetric(new SnapshotHistogram(
      `${PREFIX}request_duration_seconds`,
      'Time from the request reaching claylb to the end of its answer, by upstream',
      'upstream',
      DURATION_BUCKETS_SECONDS,
      () => hostList().flatMap((m) => m.count === 0 && m.upstream === NO_UPSTREAM ? [] : [{ label: m.upstream, buckets: m.buckets, sum: m.durationSum, count: m.count }]),
    ) as unknown as Counter)
    snapshotCounter(`${PREFIX}upstream_tries_total`, 'Tries sent to an upstream, by outcome (local: the client left or claylb stopped it; never counted against the upstream)', ['upstream', 'outcome'], (add) => {
      for (const m of hostList()) {
        if (m.upstream === NO_UPSTREAM) continue
        for (let i = 0; i < OUTCOMES.length; i++) add({ upstream: m.upstream, outcome: OUTCOMES[i]! }, m.tries[i]!)
      }
    })
    snapshotGauge(`${PREFIX}inflight_requests`, 'Requests in flight through the proxy', [], (add) => add({}, o.inflight() + remoteSum((c) => c.inflight)))

    snapshotCounter(`${PREFIX}dns_resolutions_total`, 'Resolutions of each dns upstream, by result (failed: an error or an empty answer; the last good set was kept)', ['dns', 'result'], (add) => {
      for (const d of this.dnsSource?.() ?? []) {
        add({ dns: d.dns, result: 'ok' }, d.ok)
        add({ dns: d.dns, result: 'failed' }, d.failed)
      }
    })
    snapshotGauge(`${PREFIX}proxy_processes`, 'Proxy processes serving (listen.processes; 1 when claylb runs as one process)', [], (add) => add({}, this.processSource?.live ?? 1))
    snapshotCounter(`${PREFIX}proxy_process_restarts_total`, 'Proxy processes replaced after they died', [], (add) => add({}, this.processSource?.restarts ?? 0))

    // ---- retries ----
    const policy = o.retries
    snapshotCounter(`${PREFIX}retries_total`, 'Retries started, by the outcome of the try that failed', ['reason'], (add) => {
      for (const r of RETRY_REASONS) add({ reason: r }, policy.retried[r] + remoteSum((c) => c.retried[r] ?? 0))
    })
    snapshotCounter(`${PREFIX}retry_budget_exhausted_total`, 'Retries refused because the retry budget was spent', [], (add) => add({}, policy.overflow + remoteSum((c) => c.overflow)))

    // ---- upstream health (read from the hosts at scrape time) ----
    // summed: a worker slot has two hosts for a moment while its replacement comes up
    const perHost = (name: string, help: string, read: (h: Host) => number): void =>
      snapshotGauge(name, help, ['upstream'], (add) => { for (const h of cluster.hosts) add({ upstream: h.metricsLabel }, read(h)) })
    perHost(`${PREFIX}upstream_up`, 'Hosts under this label that are healthy, not ejected and not draining (1 or 0; 2 while a worker slot surges)', (h) => h.up ? 1 : 0)
    perHost(`${PREFIX}upstream_available`, 'Hosts under this label the balancer may pick (panic mode included)', (h) => h.available ? 1 : 0)
    perHost(`${PREFIX}upstream_inflight_requests`, 'Requests in flight to the upstream', (h) => h.inflight)
    snapshotCounter(`${PREFIX}upstream_ejections_total`, 'Ejections of the upstream by the outlier detector', ['upstream'], (add) => {
      for (const m of hostList()) if (m.upstream !== NO_UPSTREAM) add({ upstream: m.upstream }, m.ejections.value)
    })
    snapshotGauge(`${PREFIX}panic_mode`, '1 while too few upstreams are healthy and panic mode routes (spread) or sheds', [], (add) => add({}, cluster.panic === 'off' ? 0 : 1))

    // ---- workers (from the supervisor's last IPC samples) ----
    snapshotGauge(`${PREFIX}generation`, 'The worker generation now serving', [], (add) => add({}, o.generation()))
    const supervisorCounter = (name: string, help: string, read: (s: WorkerMetricsSource['stats']) => number): void =>
      snapshotCounter(name, help, [], (add) => add({}, this.workerSource === null ? 0 : read(this.workerSource.stats)))
    const workerGauge = (name: string, help: string, read: (w: WorkerSample) => number | undefined): void =>
      snapshotGauge(name, help, ['slot'], (add) => {
        for (const w of this.workerSource?.samples() ?? []) {
          const v = read(w)
          if (v !== undefined) add({ slot: w.slot }, v)
        }
      })
    workerGauge(`${PREFIX}worker_up`, '1 while the worker slot has a ready process', (w) => w.up ? 1 : 0)
    supervisorCounter(`${PREFIX}worker_restarts_total`, 'Worker processes restarted after an unexpected exit or a failed start', (s) => s.restarts)
    supervisorCounter(`${PREFIX}worker_recycles_total`, 'Worker processes replaced on purpose (max requests/age, ejection, failed checks, admin)', (s) => s.recycles)
    supervisorCounter(`${PREFIX}worker_crashes_total`, 'Worker processes that exited without being asked to', (s) => s.crashes)
    workerGauge(`${PREFIX}worker_process_cpu_seconds`, 'CPU time used by the worker process so far, last reported', (w) => w.process?.cpuSecondsTotal)
    workerGauge(`${PREFIX}worker_process_resident_memory_bytes`, 'Resident memory of the worker process, last reported', (w) => w.process?.residentMemoryBytes)
    workerGauge(`${PREFIX}worker_heap_used_bytes`, 'V8 heap used by the worker process, last reported', (w) => w.process?.heapUsedBytes)
    workerGauge(`${PREFIX}worker_event_loop_lag_seconds`, 'Event loop lag of the worker process, last reported', (w) => w.process?.eventLoopLagSeconds)

    // ---- state tier ----
    snapshotCounter(`${PREFIX}idempotency_requests_total`, 'Requests on idempotency routes, by outcome', ['outcome'], (add) => {
      for (const k of IDEMPOTENCY_OUTCOMES) add({ outcome: k }, this.idempotency[k].value + remoteSum((c) => c.idempotency[k] ?? 0))
    })
    snapshotCounter(`${PREFIX}idempotency_lease_expiries_total`, 'Idempotency claims lost by their owner (lease ran out before renewal or completion)', [], (add) => add({}, this.idempotencyLeaseExpiries.value + remoteSum((c) => c.idempotencyLeaseExpiries)))
    snapshotCounter(`${PREFIX}idempotency_unknown_outcomes_total`, 'Executions whose upstream died after receiving the request (retries answered outcome-unknown for one lease)', [], (add) => add({}, this.idempotencyUnknownOutcomes.value + remoteSum((c) => c.idempotencyUnknownOutcomes)))
    snapshotCounter(`${PREFIX}session_store_errors_total`, 'Failed session store operations (claylb and its workers), by operation', ['operation'], (add) => {
      let fromWorkers = 0
      for (const w of this.workerSource?.samples() ?? []) fromWorkers += w.sessionStoreErrors ?? 0
      for (const k of SESSION_OPERATIONS) add({ operation: k }, this.sessionStore[k].value + remoteSum((c) => c.sessionStore[k] ?? 0))
      if (fromWorkers > 0) add({ operation: 'worker' }, fromWorkers)
    })
    // this process's commands plus every proxy process's, bucket by bucket
    this.registry.registerMetric(new SnapshotHistogram(
      `${PREFIX}redis_command_duration_seconds`,
      'Redis command latency as claylb sees it, by command',
      'command',
      REDIS_BUCKETS_SECONDS,
      () => sumHistograms([this.redisCommands.values(), ...[...this.remote?.() ?? []].map((c) => c.redisCommands)]).filter((r) => r.count > 0),
    ) as unknown as Counter)
    // ---- access rules and rate limits ----
    const byName = (own: Iterable<[string, number]>, remote: (c: CountersExport) => Record<string, number> | undefined, add: (labels: { limit: string }, v: number) => void): void => {
      const sum = new Map<string, number>(own)
      for (const c of this.remote?.() ?? []) for (const [k, v] of Object.entries(remote(c) ?? {})) sum.set(k, (sum.get(k) ?? 0) + v)
      for (const [limit, v] of sum) add({ limit }, v)
    }
    snapshotCounter(`${PREFIX}rate_limited_total`, 'Requests refused 429 by a rate limit, by limit name', ['limit'], (add) => {
      byName([...this.policySource?.tally.rateLimited ?? []].map(([k, t]) => [k, t.value]), (c) => c.rateLimited, add)
    })
    snapshotCounter(`${PREFIX}rate_limit_store_takes_total`, 'Token leases asked of the limit\'s store (Redis for global, the primary for local), by limit name', ['limit'], (add) => {
      byName(Object.entries(this.policySource?.takes() ?? {}), (c) => c.limitTakes, add)
    })
    snapshotCounter(`${PREFIX}access_denied_total`, 'Requests refused 403 by an access rule', [], (add) => add({}, (this.policySource?.tally.accessDenied.value ?? 0) + remoteSum((c) => c.accessDenied ?? 0)))
    snapshotCounter(`${PREFIX}redis_errors_total`, 'Redis commands that failed or timed out', [], (add) => add({}, redisErrors.value + remoteSum((c) => c.redisErrors)))

    for (const h of o.cluster.hosts) this.bind(h)
    o.cluster.onChange(() => { for (const h of o.cluster.hosts) if (h.metrics === null) this.bind(h) })
  }

  /** Give a host its counters; a host under a known label (a worker's slot, a returning id) continues its series. */
  private bind (h: Host): void {
    let m = this.byId.get(h.metricsLabel)
    if (m === undefined) {
      m = new HostCounters(h.metricsLabel)
      this.byId.set(h.metricsLabel, m)
    }
    h.metrics = m
  }

  /** this process's counters as plain numbers (a proxy process's answer to the primary's scrape) */
  exportCounters (inflight: number): CountersExport {
    const hosts = []
    for (const m of [this.none, ...this.byId.values()]) {
      hosts.push({ upstream: m.upstream, codes: [...m.codes], buckets: [...m.buckets], durationSum: m.durationSum, count: m.count, tries: [...m.tries] })
    }
    const tallies = <K extends string>(r: Record<K, Tally>): Record<string, number> => Object.fromEntries(Object.entries<Tally>(r).map(([k, t]) => [k, t.value]))
    return {
      hosts,
      retried: { ...this.retries.retried },
      overflow: this.retries.overflow,
      inflight,
      idempotency: tallies(this.idempotency),
      idempotencyLeaseExpiries: this.idempotencyLeaseExpiries.value,
      idempotencyUnknownOutcomes: this.idempotencyUnknownOutcomes.value,
      sessionStore: tallies(this.sessionStore),
      redisErrors: this.redisErrors.value,
      redisCommands: [...this.redisCommands.values()].map((c) => ({ label: c.label, buckets: [...c.buckets], sum: c.sum, count: c.count })),
      rateLimited: Object.fromEntries([...this.policySource?.tally.rateLimited ?? []].map(([k, t]) => [k, t.value])),
      accessDenied: this.policySource?.tally.accessDenied.value ?? 0,
      limitTakes: this.policySource?.takes() ?? {},
    }
  }

  /** requests answered so far (every upstream, and claylb's own answers) */
  requestsTotal (): number {
    let n = this.none.count
    for (const m of this.byId.values()) n += m.count
    return n
  }

  /** this process's HostCounters plus every remote one under the same label (at scrape time) */
  private merged (): HostCounters[] {
    const out = new Map<string, HostCounters>()
    const into = (upstream: string): HostCounters => {
      let m = out.get(upstream)
      if (m === undefined) out.set(upstream, m = new HostCounters(upstream))
      return m
    }
    const add = (m: HostCounters, c: { codes: ArrayLike<number>, buckets: ArrayLike<number>, durationSum: number, count: number, tries: ArrayLike<number> }): void => {
      for (let i = 0; i < m.codes.length; i++) m.codes[i]! += c.codes[i] ?? 0
      for (let i = 0; i < m.buckets.length; i++) m.buckets[i]! += c.buckets[i] ?? 0
      for (let i = 0; i < m.tries.length; i++) m.tries[i]! += c.tries[i] ?? 0
      m.durationSum += c.durationSum
      m.count += c.count
    }
    for (const m of [this.none, ...this.byId.values()]) {
      const t = into(m.upstream)
      add(t, m)
      t.ejections.value = m.ejections.value
    }
    for (const r of this.remote?.() ?? []) for (const h of r.hosts) add(into(h.upstream), h)
    return [...out.values()]
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

  // ---- ProxyObserver (the request path) ----

  tryEnded (host: Host, outcome: TryOutcome): void {
    const m = host.metrics
    if (m !== null) m.tries[OUTCOME_INDEX[outcome]]!++
  }

  requestEnded (host: Host | undefined, status: number, durationMs: number): void {
    ((host === undefined ? null : host.metrics) ?? this.none).request(status, durationMs / 1000)
  }

  /** the Prometheus text of every metric */
  async text (): Promise<string> {
    const own = await this.registry.metrics()
    if (this.remoteProcesses === null) return own + await this.processRegistry.metrics()
    // every process's series under its pid: 'sum' over distinct label sets keeps each value as it is
    // (prom-client's own aggregators would omit or average some of them)
    const byPid = (pid: number, metrics: ProcessMetricsExport): ProcessMetricsExport => metrics.map((m) => ({
      ...m, aggregator: 'sum', values: m.values.map((v) => ({ ...v, labels: { ...v.labels, pid } })),
    }))
    const all = [byPid(process.pid, await this.exportProcessMetrics())]
    for (const r of this.remoteProcesses()) all.push(byPid(r.pid, r.metrics))
    return own + await AggregatorRegistry.aggregate(all).metrics()
  }

  /** this process's default metrics as plain JSON (a proxy process's answer to a scrape) */
  exportProcessMetrics (): Promise<ProcessMetricsExport> {
    return this.processRegistry.getMetricsAsJSON()
  }

  get contentType (): string {
    return this.registry.contentType
  }
}

/**
 * A histogram whose observations were already counted as plain numbers (HostCounters, CommandCounters,
 * other processes' exports): this only lays them out as prom-client's Registry expects (cumulative
 * `_bucket`s, `_sum`, `_count`).
 */
class SnapshotHistogram {
  readonly type = 'histogram'
  readonly aggregator = 'sum'
  constructor (readonly name: string, readonly help: string, private readonly labelName: string, private readonly bounds: readonly number[], private readonly source: () => Iterable<HistogramRow>) {}

  get (): { name: string, help: string, type: string, aggregator: string, values: Array<{ labels: Record<string, string | number>, value: number, metricName: string }> } {
    const values = []
    const bounds = this.bounds
    for (const m of this.source()) {
      let acc = 0
      for (let i = 0; i < bounds.length; i++) {
        acc += m.buckets[i]!
        values.push({ labels: { [this.labelName]: m.label, le: bounds[i]! }, value: acc, metricName: `${this.name}_bucket` })
      }
      values.push({ labels: { [this.labelName]: m.label, le: '+Inf' }, value: m.count, metricName: `${this.name}_bucket` })
      values.push({ labels: { [this.labelName]: m.label }, value: m.sum, metricName: `${this.name}_sum` })
      values.push({ labels: { [this.labelName]: m.label }, value: m.count, metricName: `${this.name}_count` })
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values }
  }
}
