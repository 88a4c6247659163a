/**
 * @module control/process/primary
 * The primary's side of the proxy processes (nginx's master, Envoy's main thread): it forks them
 * with node:cluster, pushes them a snapshot of the upstreams on every change, feeds their batched try
 * outcomes to the one outlier detector, sums their counters when /metrics or /status is read, replaces
 * one that dies (with the workers' crash-loop backoff), and drains them all on shutdown.
 *
 * Accepting: with `reusePort` (Node ≥ 22.12) each process binds its own SO_REUSEPORT socket and the
 * kernel spreads connections by their 4-tuple; older Nodes (20) take `handoff` (cores/handoff.ts): the
 * primary accepts and sends each connection to the next process in turn. Also there for comparison:
 * `shared` (node:cluster SCHED_NONE: one listening handle every process accept()s on; whichever wakes
 * first takes most connections) and node:cluster's `round-robin` (a connection handed to a process
 * that dies before it took it is never closed: the client hangs; seen with kill -9 under load).
 * CLAYLB_ACCEPT=reuseport|handoff|shared|round-robin forces one (the benchmark compares).
 * The app workers are child_process forks of the Supervisor, never cluster workers: the two are
 * never confused (cluster.workers holds only proxy processes).
 */
import { addTally, newPolicyTally, type PolicyTally } from '../../data/policy/tally.js'
import cluster, { type Worker } from 'node:cluster'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import type { Config } from '../../shared/config/schema.js'
import type { Logger } from '../../shared/log.js'
import type { Snapshot } from '../../shared/process/snapshot.js'
import { PROXY_PROCESS_ENV, type CountersExport, type HostCountersExport, type FromProxy, type ListenSpec, type ProcessMetricsExport, type ProcessRow, type ProcessStats, type ToProxy } from '../../shared/process/protocol.js'
import type { Cluster } from '../../data/upstream/cluster.js'
import type { Host } from '../../data/upstream/host.js'
import { OUTCOMES } from '../../data/upstream/host-counters.js'
import { Counters, addCounters, seriesKey } from '../../data/counting/counters.js'
import { sumHistograms, type ProcessesSource } from '../metrics/metrics.js'
import { CrashBackoff } from '../supervisor/crash-backoff.js'
import { hasReusePort } from './count.js'
import { HandoffAcceptor } from './handoff.js'
import { snapshotOf } from './snapshot.js'
import type { ControlView, DataPlaneHandle } from './data-plane-handle.js'
import { SharedBuckets } from '../../data/policy/token-bucket.js'
import { answerTake } from './token-lease.js'

export type AcceptMode = 'reuseport' | 'handoff' | 'round-robin' | 'shared'
const ACCEPT_MODES: readonly string[] = ['reuseport', 'handoff', 'round-robin', 'shared'] satisfies AcceptMode[]

/** how the processes share the port: reusePort where the running Node has it */
export function acceptMode (env: NodeJS.ProcessEnv = process.env): AcceptMode {
  const forced = env['CLAYLB_ACCEPT']
  if (forced !== undefined && forced !== '') {
    if (!ACCEPT_MODES.includes(forced)) throw new Error(`CLAYLB_ACCEPT: must be one of ${ACCEPT_MODES.join(', ')} (got "${forced}")`)
    if (forced === 'reuseport' && !hasReusePort()) throw new Error(`CLAYLB_ACCEPT=reuseport needs Node 22.12 or later (this is ${process.version})`)
    return forced as AcceptMode
  }
  return hasReusePort() ? 'reuseport' : 'handoff'
}

/** how long a /status or /metrics read waits for a process's counters before it uses the last ones */
const ANSWER_MS = 2000
/**
 * How long a drain waits for every process to acknowledge the snapshot without the host and to
 * answer with fresh counters. A drain reads what each process sent the host at that instant, so it
 * must never go on with an old count: a process slow to answer (a busy machine, a long GC) is
 * waited for, and only one that is wedged this long is given up on, with a warning.
 */
const DRAIN_ANSWER_MS = 30_000
const STATS_POLL_MS = 20

class ProxyProcess {
  stats: ProcessStats | null = null
  applied = 0
  listening = false
  /** it has loaded its code and asked for its boot message */
  helloed = false
  /** the primary lets it boot (bind or take connections) */
  released = false
  booted = false
  readonly startedAt = Date.now()
  readonly pending = new Map<number, () => void>()
  readonly listened: Promise<number>
  onListening!: (port: number) => void
  onBootFailed!: (err: Error) => void
  constructor (readonly index: number, readonly worker: Worker) {
    this.listened = new Promise((resolve, reject) => { this.onListening = resolve; this.onBootFailed = reject })
    this.listened.catch(() => {})
  }

  get pid (): number { return this.worker.process.pid ?? 0 }

  send (msg: ToProxy): void {
    if (this.worker.isConnected()) this.worker.send(msg)
  }
}

export class ProxyProcesses implements DataPlaneHandle, ProcessesSource {
  readonly mode: AcceptMode
  /** replacements started after a proxy process died */
  restarts = 0
  private readonly procs = new Set<ProxyProcess>()
  /** the processes of the start, by index */
  private readonly initial: ProxyProcess[] = []
  private readonly backoff: CrashBackoff[] = []
  private readonly timers = new Set<NodeJS.Timeout>()
  /**
   * the TLS session ticket keys of every proxy process, replacements included: made once, so a ticket
   * stays good across processes and process restarts (not across a restart of claylb)
   */
  private readonly ticketKeys = randomBytes(48).toString('base64')
  private version = 1
  private current: Snapshot
  private pushQueued = false
  private stopping = false
  /** every process may boot (the first one listens): replacements boot as soon as they load */
  private opened = false
  private statsSeq = 0
  private listenSpec: ListenSpec
  /** what processes that exited had counted (so totals never go back) */
  private retiredCounters: CountersExport[] = []
  private retiredHostRequests = new Map<string, number>()
  private ackWaiters: Array<() => void> = []
  /** accept mode `handoff`: the primary's listening socket */
  private readonly acceptor: HandoffAcceptor | null
  /** the buckets of `local` rate limits, leased to the processes (control/process/token-lease.ts) */
  private readonly buckets = new SharedBuckets()

  /** the primary's own counters: only its hosts' ejections (the processes count the requests) */
  readonly counters: Counters
  readonly inflight = 0

  constructor (private readonly app: ControlView, private readonly logger: Logger, readonly count: number) {
    this.mode = acceptMode()
    this.acceptor = this.mode === 'handoff' ? new HandoffAcceptor(() => this.serving()) : null
    const c = app.config
    this.listenSpec = { host: c.listen.host, port: c.listen.port, reusePort: this.mode === 'reuseport', handoff: this.mode === 'handoff' }
    for (let i = 0; i < count; i++) this.backoff.push(new CrashBackoff(c.workers))
    this.current = snapshotOf(app.pools, this.version, app.generation)
    const watched = new WeakSet<Cluster>()
    const queue = (): void => {
      // a pool a reload added is watched from its first change on
      for (const name of app.pools.names()) {
        const c = app.pools.get(name)!.cluster
        if (!watched.has(c)) { watched.add(c); c.onStateChange(queue) }
      }
      if (this.pushQueued) return
      this.pushQueued = true
      // every change of one tick (a host's health, the panic it causes) travels in one push
      queueMicrotask(() => { this.pushQueued = false; this.push() })
    }
    app.pools.onChange(queue)
    queue()
    this.counters = new Counters(app.pools)
  }

  // ---- ProcessesSource (the metrics) ----

  get processes (): ProcessesSource { return this }

  exports (): CountersExport[] {
    return [...this.retiredCounters, ...[...this.procs].flatMap((p) => p.stats === null ? [] : [p.stats.counters])]
  }

  processMetrics (): Array<{ pid: number, metrics: ProcessMetricsExport }> {
    return [...this.procs].flatMap((p) => p.stats?.processMetrics === undefined ? [] : [{ pid: p.pid, metrics: p.stats.processMetrics }])
  }

  // ---- HostDrainWatch (the supervisor, the admin API) ----

  async drained (h: Host): Promise<void> {
    if (!await this.settled(DRAIN_ANSWER_MS)) this.logger.warn({ host: h.id }, 'a proxy process did not acknowledge the snapshot without a draining host in time; counting anyway')
    if (!await this.refresh({ processMetrics: false, waitMs: DRAIN_ANSWER_MS })) this.logger.warn({ host: h.id }, 'a proxy process did not report its counters in time; counting with its last ones')
  }

  // ---- DataPlane ----

  /**
   * Fork every proxy process now, while the workers start: each loads its code (most of its start-up)
   * and then waits, unbound, until `listen` lets it boot. Starting them one after another once the
   * workers were up took 8 s a process on a loaded 2-core machine.
   */
  prepare (): void {
    if (this.initial.length > 0) return
    // before setupPrimary(), which freezes the policy
    cluster.schedulingPolicy = this.mode === 'round-robin' ? cluster.SCHED_RR : cluster.SCHED_NONE
    cluster.setupPrimary({ exec: fileURLToPath(new URL('../../data/process/proxy-main.js', import.meta.url)) })
    for (let i = 0; i < this.count; i++) this.initial.push(this.fork(i))
  }

  async listen (): Promise<string> {
    this.prepare()
    // one that exited before it listened fails the start (its `listened` rejects)
    const [first, ...rest] = this.initial as [ProxyProcess, ...ProxyProcess[]]
    this.release(first)
    let port = await first.listened
    // handoff: the port is the primary's and the processes bind nothing. It opens only once the first
    // process takes connections: one accepted before would have had nowhere to go but closed (issue 29)
    if (this.acceptor !== null) this.listenSpec = { ...this.listenSpec, port: port = await this.acceptor.listen(this.listenSpec.port, this.listenSpec.host) }
    // SO_REUSEPORT with port 0 would give each process its own port: the rest take the first one's
    if (this.mode === 'reuseport') this.listenSpec = { ...this.listenSpec, port }
    this.opened = true
    for (const p of rest) this.release(p)
    await Promise.all(rest.map((p) => p.listened))
    const h = this.listenSpec.host.includes(':') ? `[${this.listenSpec.host}]` : this.listenSpec.host
    return `${this.app.config.listen.tls === undefined ? 'http' : 'https'}://${h}:${port}`
  }

  async drain (acceptGraceMs: number): Promise<void> {
    this.stopping = true
    for (const t of this.timers) clearTimeout(t)
    // each process keeps accepting for the grace (its own timer, started after this one: the acceptor
    // closes first, so no connection is handed to a process that closed)
    if (this.acceptor !== null) {
      const acceptor = this.acceptor
      setTimeout(() => acceptor.close(), acceptGraceMs).unref()
    }
    const exits = [...this.procs].map((p) => new Promise<void>((resolve) => {
      if (p.worker.isDead()) return resolve()
      p.worker.once('exit', () => resolve())
      // one that never booted holds nothing to drain
      if (!p.booted) p.worker.process.kill('SIGTERM')
      else p.send({ type: 'stop', acceptGraceMs })
      // a process that cannot drain within the grace and the shutdown timeout (plus its own cleanup) is killed
      const t = setTimeout(() => p.worker.process.kill('SIGKILL'), acceptGraceMs + this.app.config.shutdown.timeoutMs + 5000)
      t.unref()
      p.worker.once('exit', () => clearTimeout(t))
    }))
    await Promise.all(exits)
  }

  /**
   * Ask every listening process for its counters and put the totals on the primary's hosts. True when
   * each answered (or exited) within `waitMs`; false when one's last counters had to stand in.
   */
  async refresh (o: { processMetrics: boolean, waitMs?: number } = { processMetrics: false }): Promise<boolean> {
    const id = ++this.statsSeq
    const answered = await Promise.all([...this.procs].filter((p) => p.listening).map((p) => new Promise<boolean>((resolve) => {
      const t = setTimeout(() => { p.pending.delete(id); resolve(false) }, o.waitMs ?? ANSWER_MS)
      p.pending.set(id, () => { clearTimeout(t); resolve(true) })
      p.send({ type: 'stats', id, process: o.processMetrics })
    })))
    // the primary's hosts carry the totals, so /status, the supervisor's drain and its logs read them
    const requests = new Map(this.retiredHostRequests)
    const inflight = new Map<string, number>()
    for (const p of this.procs) {
      for (const [hid, r, i] of p.stats?.hosts ?? []) {
        requests.set(hid, (requests.get(hid) ?? 0) + r)
        inflight.set(hid, (inflight.get(hid) ?? 0) + i)
      }
    }
    for (const h of this.app.pools.hosts) {
      h.requests = requests.get(h.key) ?? 0
      h.inflight = inflight.get(h.key) ?? 0
    }
    return !answered.includes(false)
  }

  status (): ProcessRow[] {
    return [...this.procs].sort((a, b) => a.index - b.index).map((p) => ({
      pid: p.pid,
      requests: p.stats?.requests ?? 0,
      inflight: p.stats?.inflight ?? 0,
      connections: p.stats?.connections ?? 0,
      startedAt: p.stats?.startedAt ?? new Date(p.startedAt).toISOString(),
      snapshot: p.applied,
    }))
  }

  /** the processes a connection may go to now (accept mode `handoff`), by slot */
  private serving (): Worker[] {
    const out: Worker[] = []
    for (const p of this.procs) if (p.listening && p.worker.isConnected()) out.push(p.worker)
    return out
  }

  /** proxy processes listening now */
  get live (): number {
    let n = 0
    for (const p of this.procs) if (p.listening) n++
    return n
  }

  /** every process applies the reload and the pools' hosts after it in one step (the certificates it re-reads itself) */
  configChanged (config: Config): void {
    this.current = snapshotOf(this.app.pools, ++this.version, this.app.generation)
    for (const p of this.procs) p.send({ type: 'config', config, snapshot: this.current })
  }

  reopenLogs (): void {
    for (const p of this.procs) p.send({ type: 'reopen-logs' })
  }

  /** the pids of the live proxy processes */
  pids (): number[] {
    return [...this.procs].map((p) => p.pid)
  }

  // ---- the processes ----

  private fork (index: number): ProxyProcess {
    const worker = cluster.fork({ [PROXY_PROCESS_ENV]: String(index + 1) })
    const p = new ProxyProcess(index, worker)
    // a replacement boots as soon as it has loaded
    p.released = this.opened
    this.procs.add(p)
    worker.on('message', (msg: FromProxy) => this.onMessage(p, msg))
    worker.on('exit', (code, signal) => this.onExit(p, code, signal))
    this.logger.info({ process: index + 1, processPid: p.pid, accept: this.mode }, 'proxy process started')
    return p
  }

  private onMessage (p: ProxyProcess, msg: FromProxy): void {
    switch (msg.type) {
      case 'hello':
        p.helloed = true
        this.boot(p)
        break
      case 'tries': this.tries(msg.events); break
      case 'take': p.send(answerTake(this.buckets, msg)); break
      case 'stats':
        // an answer without default metrics (a /status) keeps the last ones, should it overtake a scrape's
        p.stats = msg.stats.processMetrics === undefined && p.stats?.processMetrics !== undefined ? { ...msg.stats, processMetrics: p.stats.processMetrics } : msg.stats
        p.pending.get(msg.id)?.()
        p.pending.delete(msg.id)
        break
      case 'applied':
        p.applied = msg.version
        this.checkAcks()
        break
      case 'listening':
        p.listening = true
        this.logger.info({ process: p.index + 1, processPid: p.pid, port: msg.port }, 'proxy process listening')
        p.onListening(msg.port)
        break
      case 'boot-failed':
        p.onBootFailed(new Error(`proxy process ${p.index + 1}: ${msg.message}`))
        break
    }
  }

  /** `p` may boot once it has loaded */
  private release (p: ProxyProcess): void {
    p.released = true
    this.boot(p)
  }

  private boot (p: ProxyProcess): void {
    if (!p.released || !p.helloed || p.booted || this.stopping) return
    p.booted = true
    // the latest snapshot and listen spec, not those of fork time
    p.send({ type: 'boot', config: this.app.config, listen: this.listenSpec, snapshot: this.current, ticketKeys: this.ticketKeys })
  }

  private tries (events: Array<string | number>): void {
    const pools = this.app.pools
    let last: Host | undefined
    for (let i = 0; i < events.length; i += 2) {
      const id = events[i] as string
      const host = last?.key === id ? last : pools.byKey(id)
      if (host === undefined) continue
      last = host
      host.outlier?.tryEnded(host, OUTCOMES[events[i + 1] as number]!)
    }
  }

  private onExit (p: ProxyProcess, code: number | null, signal: string | null): void {
    this.procs.delete(p)
    this.acceptor?.processGone(p.worker)
    for (const done of p.pending.values()) done()
    if (p.stats !== null) {
      this.retiredCounters = [sumCounters(this.retiredCounters, p.stats.counters)]
      for (const [hid, r] of p.stats.hosts) this.retiredHostRequests.set(hid, (this.retiredHostRequests.get(hid) ?? 0) + r)
    }
    this.checkAcks()
    const exit = signal ?? `code ${code}`
    if (!p.listening) p.onBootFailed(new Error(`proxy process ${p.index + 1} exited (${exit}) before it listened`))
    if (this.stopping) {
      this.logger.info({ process: p.index + 1, processPid: p.pid, exit }, 'proxy process stopped')
      return
    }
    this.logger.warn({ process: p.index + 1, processPid: p.pid, exit }, 'proxy process exited')
    if (!p.listening) return // failed to start: claylb's own start fails
    const delay = this.backoff[p.index]!.next(Date.now() - p.startedAt)
    if (delay === undefined) {
      this.logger.error({ process: p.index + 1 }, `proxy process ${p.index + 1} given up after repeated crashes (workers.maxUnstableRestarts); the others keep serving`)
      return
    }
    this.restarts++
    const t = setTimeout(() => {
      this.timers.delete(t)
      if (!this.stopping) this.fork(p.index)
    }, delay)
    this.timers.add(t)
  }

  // ---- snapshots ----

  private push (): void {
    this.current = snapshotOf(this.app.pools, ++this.version, this.app.generation)
    for (const p of this.procs) p.send({ type: 'snapshot', snapshot: this.current })
  }

  /** Resolves true once every live process routes with the latest snapshot, false if `ms` passed first. */
  settled (ms: number): Promise<boolean> {
    if (this.pushQueued) return new Promise((resolve) => queueMicrotask(() => resolve(this.settled(ms))))
    if (this.acked()) return Promise.resolve(true)
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), ms)
      this.ackWaiters.push(() => { clearTimeout(t); resolve(true) })
    })
  }

  private acked (): boolean {
    for (const p of this.procs) if (p.applied < this.version) return false
    return true
  }

  private checkAcks (): void {
    if (this.ackWaiters.length === 0 || !this.acked()) return
    for (const w of this.ackWaiters.splice(0)) w()
  }

  /** every process's in-flight requests to `host` are over (or `ms` passed) */
  async hostIdle (host: Host, ms: number): Promise<boolean> {
    const end = Date.now() + ms
    await this.settled(ms)
    for (;;) {
      // idle only by counters every process sent after the drain began, never by one's old ones
      const fresh = await this.refresh({ processMetrics: false, waitMs: Math.max(ANSWER_MS, end - Date.now()) })
      if (fresh && host.inflight === 0) return true
      if (Date.now() >= end) return false
      await new Promise((resolve) => setTimeout(resolve, STATS_POLL_MS))
    }
  }
}

/** two processes' counters as one (a process that exited keeps its share of the totals) */
function sumCounters (acc: CountersExport[], c: CountersExport): CountersExport {
  const a = acc[0]
  if (a === undefined) return { ...c, inflight: 0 }
  const rows = (x: readonly HostCountersExport[], y: readonly HostCountersExport[]): HostCountersExport[] => {
    const byLabel = new Map(x.map((h) => [seriesKey(h.pool, h.upstream), h]))
    for (const h of y) {
      const k = seriesKey(h.pool, h.upstream)
      const t = byLabel.get(k)
      if (t === undefined) byLabel.set(k, { ...h, codes: [...h.codes], buckets: [...h.buckets], tries: [...h.tries] })
      else addCounters(t, h)
    }
    return [...byLabel.values()]
  }
  const add = (x: Record<string, number>, y: Record<string, number>): Record<string, number> => {
    const out = { ...x }
    for (const [k, v] of Object.entries(y)) out[k] = (out[k] ?? 0) + v
    return out
  }
  return {
    hosts: rows(a.hosts, c.hosts),
    routes: rows(a.routes, c.routes),
    retried: add(a.retried, c.retried),
    overflow: a.overflow + c.overflow,
    overloaded: Object.fromEntries([...new Set([...Object.keys(a.overloaded), ...Object.keys(c.overloaded)])].map((p) => [p, add(a.overloaded[p] ?? {}, c.overloaded[p] ?? {})])),
    inflight: 0,
    idempotency: add(a.idempotency, c.idempotency),
    idempotencyLeaseExpiries: a.idempotencyLeaseExpiries + c.idempotencyLeaseExpiries,
    idempotencyUnknownOutcomes: a.idempotencyUnknownOutcomes + c.idempotencyUnknownOutcomes,
    sessionStore: add(a.sessionStore, c.sessionStore),
    redisErrors: a.redisErrors + c.redisErrors,
    redisCommands: sumHistograms([a.redisCommands, c.redisCommands]),
    policy: sumPolicy(a.policy, c.policy),
    rateLimited: add(a.rateLimited ?? {}, c.rateLimited ?? {}),
    accessDenied: (a.accessDenied ?? 0) + (c.accessDenied ?? 0),
    limitTakes: add(a.limitTakes ?? {}, c.limitTakes ?? {}),
  }
}

function sumPolicy (a: PolicyTally, b: PolicyTally): PolicyTally {
  const t = newPolicyTally()
  addTally(t, a)
  addTally(t, b)
  return t
}
