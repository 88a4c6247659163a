/**
 * @module upstream/host
 * One upstream (an existing backend or a spawned worker): its connection pool, counters and health.
 * Checkers and the supervisor WRITE health; the balancer only READS `available`.
 */
import type { HostCounters } from './host-counters.js'
import type { UpstreamPool } from './upstream-pool.js'
import type { TryOutcome } from './retry-policy.js'

/** the passive health of the host's pool (health/outlier.ts), fed every try */
export interface TryJudge {
  tryEnded (host: Host, outcome: TryOutcome): void
}

/** How a cluster in panic routes: `spread` makes every non-draining host available, `shed` none. */
export type PanicRouting = 'off' | 'spread' | 'shed'

export interface HostOptions {
  id: string
  url: string
  weight?: number
  /** a worker listening on a Unix socket */
  socketPath?: string
  /** worker slot / kind; for /status */
  kind?: 'static' | 'worker'
  /** a worker's slot: its metrics are labelled by slot, which outlives each process */
  slot?: number
}

export class Host {
  readonly id: string
  readonly url: string
  readonly origin: string
  /** a reload may change it (the balancer reads it on every pick) */
  weight: number
  readonly kind: 'static' | 'worker'
  readonly socketPath: string | undefined
  /** a spawned worker's slot */
  readonly slot: number | undefined
  /** the `upstream` label of this host's metrics: the id, or `worker-<slot>` for a spawned worker */
  readonly metricsLabel: string
  /** engine "raw": this host's keep-alive pool of raw sockets, made on the first request */
  pool: UpstreamPool | null = null
  /** precomputed for the hot path: written by the setters below, read by the balancer */
  available = true
  healthy = true
  ejected = false
  draining = false
  /** set by the cluster when too few hosts are up */
  panic: PanicRouting = 'off'
  inflight = 0
  requests = 0
  /** smooth weighted round-robin state, owned by the balancer */
  currentWeight = 0
  /** outlier-detector state (health/outlier.ts): consecutive failed tries, ejections so far */
  failures = 0
  ejections = 0
  ejectedAt = 0
  unejectedAt = 0
  /** the outlier detector of this host's pool */
  outlier: TryJudge | null = null
  /** cores/try-reporter: the batch that last carried an outcome of this host to the primary */
  reportEpoch = 0
  /** metric children bound to this host's labels (metrics/metrics.ts), so requests do no label lookups */
  metrics: HostCounters | null = null
  /** told when healthy/ejected/draining change (the cluster re-evaluates panic mode) */
  onStateChange: ((host: Host) => void) | null = null
  private idleWaiters: Array<() => void> = []

  constructor (o: HostOptions) {
    this.id = o.id
    this.url = o.url
    this.weight = o.weight ?? 1
    this.kind = o.kind ?? 'static'
    this.socketPath = o.socketPath
    this.slot = o.slot
    this.metricsLabel = this.kind === 'worker' && o.slot !== undefined ? `worker-${o.slot}` : o.id
    // a worker's url is `unix:/path.sock`, which has no origin; an HTTP client of it (a health
    // check, a worker's readiness probe) still needs an http one
    this.origin = o.socketPath ? 'http://localhost' : new URL(o.url).origin
  }

  /** healthy, not ejected, not draining: what health reports and panic mode count (`available` may differ in panic) */
  get up (): boolean {
    return this.healthy && !this.ejected && !this.draining
  }

  setHealthy (healthy: boolean): void {
    if (this.healthy === healthy) return
    this.healthy = healthy
    this.changed()
  }

  setEjected (ejected: boolean): void {
    if (this.ejected === ejected) return
    this.ejected = ejected
    this.changed()
  }

  /** Stop routing new requests here; in-flight ones finish. */
  setDraining (draining: boolean): void {
    if (this.draining === draining) return
    this.draining = draining
    this.changed()
  }

  /** Called by the cluster only; does not notify back. */
  setPanic (panic: PanicRouting): void {
    this.panic = panic
    this.refresh()
  }

  private changed (): void {
    this.refresh()
    this.onStateChange?.(this)
  }

  private refresh (): void {
    // a draining host is the operator's (or supervisor's) decision: not even panic routes there
    this.available = !this.draining && (this.panic === 'off' ? this.up : this.panic === 'spread')
  }

  /** called by the exchange when a request to this host finishes, whatever its outcome */
  release (): void {
    if (--this.inflight === 0 && this.idleWaiters.length > 0) {
      const waiters = this.idleWaiters
      this.idleWaiters = []
      for (const w of waiters) w()
    }
  }

  /** Resolves when no request is in flight, or after timeoutMs; true when idle. */
  waitIdle (timeoutMs: number): Promise<boolean> {
    if (this.inflight === 0) return Promise.resolve(true)
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), timeoutMs)
      this.idleWaiters.push(() => { clearTimeout(t); resolve(true) })
    })
  }

  /** closes the idle connections of its pool; a request still on one finishes first */
  close (): void {
    this.pool?.close()
  }

  toJSON (): Record<string, unknown> {
    return {
      id: this.id,
      url: this.url,
      weight: this.weight,
      healthy: this.up,
      state: this.draining ? 'draining' : this.ejected ? 'ejected' : this.healthy ? 'healthy' : 'unhealthy',
      available: this.available,
      kind: this.kind,
      ejections: this.ejections,
      inflight: this.inflight,
      requests: this.requests,
    }
  }
}
