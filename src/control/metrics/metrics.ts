/**
 * @module control/metrics/metrics
 * Every Prometheus metric claylb exports, declared here and registered in ONE prom-client Registry.
 *
 * Cost model: the request path only adds to plain numbers (the data plane's data/counting/counters.ts: a
 * per-host HostCounters bound when the host joins a pool, tallies); the registry reads them in
 * `collect()` callbacks at scrape time, with the proxy processes' exports added. prom-client's own labelled inc()/observe() hash their labels on every call (≈0.4 µs and
 * ≈1 µs measured), which is why no request calls them. Labels are bounded: upstream id (or worker slot),
 * code class, try outcome, retry reason; never a path.
 *
 * Worker processes report their samples to the supervisor over IPC; the scrape reads the last sample
 * (WorkerMetricsSource) and never waits on a worker, unlike prom-client's AggregatorRegistry.
 */
import { AggregatorRegistry, Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client'
import type { Host } from '../../data/upstream/host.js'
import { RETRY_REASONS } from '../../data/upstream/retry-policy.js'
import { DURATION_BUCKETS_SECONDS, HostCounters, OUTCOMES, Tally } from '../../data/upstream/host-counters.js'
import { IDEMPOTENCY_OUTCOMES, NO_UPSTREAM, REDIS_BUCKETS_SECONDS, SESSION_OPERATIONS, addCounters, seriesKey, type Counters, type HostsView } from '../../data/counting/counters.js'
import type { CountersExport, HistogramRow, HostCountersExport, ProcessMetricsExport } from '../../shared/process/protocol.js'
import { addTally, newPolicyTally, type PolicyTally } from '../../data/policy/tally.js'

export { DURATION_BUCKETS_SECONDS, Tally, NO_UPSTREAM }

export const PREFIX = 'claylb_'
const CODE_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const

/** the `pool` label of a series; none on claylb's own answers (`upstream="none"`: no pool took them) */
const poolLabel = (m: HostCounters): { pool?: string } => m.pool === '' ? {} : { pool: m.pool }

/** What the supervisor knows of one live worker (its last IPC report; never fetched on scrape). */
export interface WorkerSample {
  /** `worker-<slot>`: bounded, a replacement takes its predecessor's slot */
  slot: string
  up: boolean
  /** errors of the session store seen by this worker's runtime */
  sessionStoreErrors?: number
  process?: { cpuSecondsTotal: number, residentMemoryBytes: number, heapUsedBytes: number, eventLoopLagSeconds: number }
}

/** The seam the worker supervisor fills (control/supervisor/supervisor.ts). */
export interface WorkerMetricsSource {
  readonly stats: { readonly restarts: number, readonly recycles: number, readonly crashes: number }
  samples (): Iterable<WorkerSample>
}

/** The proxy processes (control/process/primary.ts), their last answers fetched just before the scrape. */
export interface ProcessesSource {
  readonly live: number
  readonly restarts: number
  /** every process's counters (those that exited too, so totals never go back) */
  exports (): Iterable<CountersExport>
  /** every live process's default metrics */
  processMetrics (): Iterable<{ pid: number, metrics: ProcessMetricsExport }>
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

export interface MetricsOptions {
  /** this process's counters (a primary's: only its hosts' ejections; its proxy processes count the rest) */
  counters: Counters
  /** every host of every pool, and the panic state */
  cluster: HostsView
  /** requests in flight through this process's proxy */
  inflight: () => number
  generation: () => number
  /** default process metrics of this process (off in unit tests that build many registries) */
  processMetrics?: boolean
  workers?: WorkerMetricsSource
  /** each `dns` upstream's resolutions (control/pools), read at scrape time */
  dns?: () => Iterable<{ dns: string, ok: number, failed: number }>
  /** the proxy processes; absent: this process is the only one */
  processes?: ProcessesSource
}

export class Metrics {
  readonly registry = new Registry()
  /** prom-client's default metrics of this process, apart so the primary can label them (and each proxy process's) by pid */
  private readonly processRegistry = new Registry()
  private readonly counters: Counters
  private readonly processes: ProcessesSource | null

  constructor (o: MetricsOptions) {
    const own = this.counters = o.counters
    this.processes = o.processes ?? null
    const registers = [this.registry]
    const cluster = o.cluster
    const workers = o.workers ?? null
    const hostList = (): HostCounters[] => this.processes === null ? [own.none, ...own.byHost.values()] : this.hostTotals()
    const routeList = (): HostCounters[] => this.processes === null ? [...own.byRoute.values()] : this.routeTotals()
    const remoteSum = (read: (c: CountersExport) => number): number => {
      let n = 0
      for (const c of this.processes?.exports() ?? []) n += read(c)
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
    snapshotCounter(`${PREFIX}requests_total`, 'Requests answered, by pool, upstream (none: answered by claylb itself) and status class', ['pool', 'upstream', 'code_class'], (add) => {
      for (const m of hostList()) {
        for (let c = 1; c <= 5; c++) if (m.codes[c]! > 0 || m.upstream !== NO_UPSTREAM) add({ ...poolLabel(m), upstream: m.upstream, code_class: CODE_CLASSES[c - 1]! }, m.codes[c]!)
      }
    })
    this.registry.registerMetric(new SnapshotHistogram(
      `${PREFIX}request_duration_seconds`,
      'Time from the request reaching claylb to the end of its answer, by pool and upstream',
      DURATION_BUCKETS_SECONDS,
      () => hostList().flatMap((m) => m.count === 0 && m.upstream === NO_UPSTREAM ? [] : [{ labels: { ...poolLabel(m), upstream: m.upstream }, buckets: m.buckets, sum: m.durationSum, count: m.count }]),
    ) as unknown as Counter)
    snapshotCounter(`${PREFIX}upstream_tries_total`, 'Tries sent to an upstream, by pool and outcome (local: the client left or claylb stopped it; never counted against the upstream)', ['pool', 'upstream', 'outcome'], (add) => {
      for (const m of hostList()) {
        if (m.upstream === NO_UPSTREAM) continue
        for (let i = 0; i < OUTCOMES.length; i++) add({ pool: m.pool, upstream: m.upstream, outcome: OUTCOMES[i]! }, m.tries[i]!)
      }
    })
    // per route: its name (routes[].name, else its index; `default` when no route matched) and its pool
    snapshotCounter(`${PREFIX}route_requests_total`, 'Requests answered, by route, its pool and status class', ['route', 'pool', 'code_class'], (add) => {
      for (const m of routeList()) for (let c = 1; c <= 5; c++) add({ route: m.upstream, pool: m.pool, code_class: CODE_CLASSES[c - 1]! }, m.codes[c]!)
    })
    this.registry.registerMetric(new SnapshotHistogram(
      `${PREFIX}route_request_duration_seconds`,
      'Time from the request reaching claylb to the end of its answer, by route and its pool',
      DURATION_BUCKETS_SECONDS,
      () => routeList().map((m) => ({ labels: { route: m.upstream, pool: m.pool }, buckets: m.buckets, sum: m.durationSum, count: m.count })),
    ) as unknown as Counter)
    snapshotGauge(`${PREFIX}inflight_requests`, 'Requests in flight through the proxy', [], (add) => add({}, o.inflight() + remoteSum((c) => c.inflight)))

    snapshotCounter(`${PREFIX}dns_resolutions_total`, 'Resolutions of each dns upstream, by result (failed: an error or an empty answer; the last good set was kept)', ['dns', 'result'], (add) => {
      for (const d of o.dns?.() ?? []) {
        add({ dns: d.dns, result: 'ok' }, d.ok)
        add({ dns: d.dns, result: 'failed' }, d.failed)
      }
    })
    snapshotGauge(`${PREFIX}proxy_processes`, 'Proxy processes serving (listen.processes; 1 when claylb runs as one process)', [], (add) => add({}, this.processes?.live ?? 1))
    snapshotCounter(`${PREFIX}proxy_process_restarts_total`, 'Proxy processes replaced after they died', [], (add) => add({}, this.processes?.restarts ?? 0))

    // ---- route policies (data/policy): this process's tally and the proxy processes' ----
    const policies = (): PolicyTally => {
      const t = newPolicyTally()
      addTally(t, own.policy)
      for (const c of this.processes?.exports() ?? []) addTally(t, c.policy)
      return t
    }
    snapshotCounter(`${PREFIX}redirects_total`, 'Requests answered with a route\'s redirect, by status', ['status'], (add) => {
      for (const [status, v] of Object.entries(policies().redirects)) add({ status }, v)
    })
    snapshotCounter(`${PREFIX}rewrites_total`, 'Request paths changed by a route\'s rewrite', [], (add) => add({}, policies().rewrites))
    snapshotCounter(`${PREFIX}compressed_responses_total`, 'Answers compressed, by algorithm', ['algorithm'], (add) => {
      for (const [algorithm, v] of Object.entries(policies().compressed)) add({ algorithm }, v)
    })
    snapshotCounter(`${PREFIX}compression_bytes_total`, 'Bytes of compressed answers, by algorithm and side (in: from the upstream, out: to the client)', ['algorithm', 'side'], (add) => {
      const t = policies()
      for (const [algorithm, v] of Object.entries(t.compressedIn)) add({ algorithm, side: 'in' }, v)
      for (const [algorithm, v] of Object.entries(t.compressedOut)) add({ algorithm, side: 'out' }, v)
    })

    // ---- retries ----
    const policy = own.retries
    snapshotCounter(`${PREFIX}retries_total`, 'Retries started, by the outcome of the try that failed', ['reason'], (add) => {
      for (const r of RETRY_REASONS) add({ reason: r }, policy.retried[r] + remoteSum((c) => c.retried[r] ?? 0))
    })
    snapshotCounter(`${PREFIX}retry_budget_exhausted_total`, 'Retries refused because the retry budget was spent', [], (add) => add({}, policy.overflow + remoteSum((c) => c.overflow)))

    snapshotCounter(`${PREFIX}pool_overloaded_total`, 'Requests answered 503 pool-overloaded by a pool\'s circuit breaker, by pool and limit (max_inflight, max_pending)', ['pool', 'limit'], (add) => {
      const sources = [policy.overloaded as Record<string, Record<string, number>>]
      for (const c of this.processes?.exports() ?? []) sources.push(c.overloaded)
      for (const s of sources) for (const [pool, r] of Object.entries(s)) for (const [limit, v] of Object.entries(r)) add({ pool, limit }, v)
    })

    // ---- upstream health (read from the hosts at scrape time) ----
    // summed: a worker slot has two hosts for a moment while its replacement comes up
    const perHost = (name: string, help: string, read: (h: Host) => number): void =>
      snapshotGauge(name, help, ['pool', 'upstream'], (add) => { for (const h of cluster.hosts) add({ pool: h.pool, upstream: h.metricsLabel }, read(h)) })
    perHost(`${PREFIX}upstream_up`, 'The upstream is healthy, not ejected and not draining in this pool (1 or 0; 2 while a worker slot surges)', (h) => h.up ? 1 : 0)
    perHost(`${PREFIX}upstream_available`, 'Hosts under this label the balancer may pick (panic mode included)', (h) => h.available ? 1 : 0)
    perHost(`${PREFIX}upstream_inflight_requests`, 'Requests in flight to the upstream', (h) => h.inflight)
    snapshotCounter(`${PREFIX}upstream_ejections_total`, 'Ejections of the upstream by its pool\'s outlier detector', ['pool', 'upstream'], (add) => {
      for (const m of hostList()) if (m.upstream !== NO_UPSTREAM) add({ pool: m.pool, upstream: m.upstream }, m.ejections.value)
    })
    snapshotGauge(`${PREFIX}panic_mode`, '1 while too few upstreams are healthy and panic mode routes (spread) or sheds', [], (add) => add({}, cluster.panic === 'off' ? 0 : 1))

    // ---- workers (from the supervisor's last IPC samples) ----
    snapshotGauge(`${PREFIX}generation`, 'The worker generation now serving', [], (add) => add({}, o.generation()))
    const supervisorCounter = (name: string, help: string, read: (s: WorkerMetricsSource['stats']) => number): void =>
      snapshotCounter(name, help, [], (add) => add({}, workers === null ? 0 : read(workers.stats)))
    const workerGauge = (name: string, help: string, read: (w: WorkerSample) => number | undefined): void =>
      snapshotGauge(name, help, ['slot'], (add) => {
        for (const w of workers?.samples() ?? []) {
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
      for (const k of IDEMPOTENCY_OUTCOMES) add({ outcome: k }, own.idempotency[k].value + remoteSum((c) => c.idempotency[k] ?? 0))
    })
    snapshotCounter(`${PREFIX}idempotency_lease_expiries_total`, 'Idempotency claims lost by their owner (lease ran out before renewal or completion)', [], (add) => add({}, own.idempotencyLeaseExpiries.value + remoteSum((c) => c.idempotencyLeaseExpiries)))
    snapshotCounter(`${PREFIX}idempotency_unknown_outcomes_total`, 'Executions whose upstream died after receiving the request (retries answered outcome-unknown for one lease)', [], (add) => add({}, own.idempotencyUnknownOutcomes.value + remoteSum((c) => c.idempotencyUnknownOutcomes)))
    snapshotCounter(`${PREFIX}session_store_errors_total`, 'Failed session store operations (claylb and its workers), by operation', ['operation'], (add) => {
      let fromWorkers = 0
      for (const w of workers?.samples() ?? []) fromWorkers += w.sessionStoreErrors ?? 0
      for (const k of SESSION_OPERATIONS) add({ operation: k }, own.sessionStore[k].value + remoteSum((c) => c.sessionStore[k] ?? 0))
      if (fromWorkers > 0) add({ operation: 'worker' }, fromWorkers)
    })
    // this process's commands plus every proxy process's, bucket by bucket
    this.registry.registerMetric(new SnapshotHistogram(
      `${PREFIX}redis_command_duration_seconds`,
      'Redis command latency as claylb sees it, by command',
      REDIS_BUCKETS_SECONDS,
      () => sumHistograms([own.redisCommands.values(), ...[...this.processes?.exports() ?? []].map((c) => c.redisCommands)]).filter((r) => r.count > 0).map((r) => ({ ...r, labels: { command: r.label } })),
    ) as unknown as Counter)
    // ---- access rules and rate limits ----
    const perLimit = (own: ReadonlyMap<string, Tally>, remote: (c: CountersExport) => Record<string, number> | undefined, add: (labels: { limit: string }, v: number) => void): void => {
      const sum = new Map<string, number>([...own].map(([k, t]) => [k, t.value]))
      for (const c of this.processes?.exports() ?? []) for (const [k, v] of Object.entries(remote(c) ?? {})) sum.set(k, (sum.get(k) ?? 0) + v)
      for (const [limit, v] of sum) add({ limit }, v)
    }
    snapshotCounter(`${PREFIX}rate_limited_total`, 'Requests refused 429 by a rate limit, by limit name', ['limit'], (add) => perLimit(own.limits.rateLimited, (c) => c.rateLimited, add))
    snapshotCounter(`${PREFIX}rate_limit_store_takes_total`, 'Token leases asked of the limit\'s store (Redis for global, the primary for local), by limit name', ['limit'], (add) => perLimit(own.limits.takes, (c) => c.limitTakes, add))
    snapshotCounter(`${PREFIX}access_denied_total`, 'Requests refused 403 by an access rule', [], (add) => add({}, own.limits.accessDenied.value + remoteSum((c) => c.accessDenied ?? 0)))
    snapshotCounter(`${PREFIX}redis_errors_total`, 'Redis commands that failed or timed out', [], (add) => add({}, own.redisErrors.value + remoteSum((c) => c.redisErrors)))
  }

  /** every host's counters, this process's plus the proxy processes', per pool and upstream label (the dashboard reads them) */
  hostTotals (): HostCounters[] {
    return this.merged((c) => c.hosts, [this.counters.none, ...this.counters.byHost.values()])
  }

  /** every route's counters, likewise per pool and route name */
  routeTotals (): HostCounters[] {
    return this.merged((c) => c.routes, this.counters.byRoute.values())
  }

  /** idempotency outcomes so far, every process's (the dashboard) */
  idempotencyTotals (): Record<string, number> {
    const out: Record<string, number> = {}
    for (const k of IDEMPOTENCY_OUTCOMES) {
      let n = this.counters.idempotency[k].value
      for (const c of this.processes?.exports() ?? []) n += c.idempotency[k] ?? 0
      out[k] = n
    }
    return out
  }

  /** `own` plus every proxy process's rows under the same pool and name (at scrape time) */
  private merged (rows: (c: CountersExport) => readonly HostCountersExport[], own: Iterable<HostCounters>): HostCounters[] {
    const out = new Map<string, HostCounters>()
    const into = (upstream: string, pool: string): HostCounters => {
      const k = seriesKey(pool, upstream)
      let m = out.get(k)
      if (m === undefined) out.set(k, m = new HostCounters(upstream, pool))
      return m
    }
    for (const m of own) {
      const t = into(m.upstream, m.pool)
      addCounters(t, m)
      t.ejections.value = m.ejections.value
    }
    for (const r of this.processes?.exports() ?? []) for (const h of rows(r)) addCounters(into(h.upstream, h.pool), h)
    return [...out.values()]
  }

  /** the Prometheus text of every metric */
  async text (): Promise<string> {
    const own = await this.registry.metrics()
    if (this.processes === null) return own + await this.processRegistry.metrics()
    // every process's series under its pid: 'sum' over distinct label sets keeps each value as it is
    // (prom-client's own aggregators would omit or average some of them)
    const byPid = (pid: number, metrics: ProcessMetricsExport): ProcessMetricsExport => metrics.map((m) => ({
      ...m, aggregator: 'sum', values: m.values.map((v) => ({ ...v, labels: { ...v.labels, pid } })),
    }))
    const all = [byPid(process.pid, await this.exportProcessMetrics())]
    for (const r of this.processes.processMetrics()) all.push(byPid(r.pid, r.metrics))
    return own + await AggregatorRegistry.aggregate(all).metrics()
  }

  /** this process's default metrics as plain JSON (a proxy process's answer to a scrape) */
  private async exportProcessMetrics (): Promise<ProcessMetricsExport> {
    return await this.processRegistry.getMetricsAsJSON()
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
  constructor (readonly name: string, readonly help: string, private readonly bounds: readonly number[], private readonly source: () => Iterable<{ labels: Record<string, string>, buckets: ArrayLike<number>, sum: number, count: number }>) {}

  get (): { name: string, help: string, type: string, aggregator: string, values: Array<{ labels: Record<string, string | number>, value: number, metricName: string }> } {
    const values = []
    const bounds = this.bounds
    for (const m of this.source()) {
      let acc = 0
      for (let i = 0; i < bounds.length; i++) {
        acc += m.buckets[i]!
        values.push({ labels: { ...m.labels, le: bounds[i]! }, value: acc, metricName: `${this.name}_bucket` })
      }
      values.push({ labels: { ...m.labels, le: '+Inf' }, value: m.count, metricName: `${this.name}_bucket` })
      values.push({ labels: m.labels, value: m.sum, metricName: `${this.name}_sum` })
      values.push({ labels: m.labels, value: m.count, metricName: `${this.name}_count` })
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values }
  }
}
