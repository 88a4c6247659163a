/**
 * @module upstream/host
 * One upstream (an existing backend or a spawned worker): its connection pool, counters and health.
 * Checkers and the supervisor WRITE health; the balancer only READS `available`.
 */
import { Pool } from 'undici'

export interface HostOptions {
  id: string
  url: string
  weight?: number
  /** a worker listening on a Unix socket */
  socketPath?: string
  connectTimeoutMs: number
  headersTimeoutMs: number
  bodyTimeoutMs: number
  /** worker slot / kind; for /status */
  kind?: 'static' | 'worker'
}

// Node's http.Server closes idle keep-alive sockets after 5 s by default; staying under it (with
// undici's own threshold on top) keeps a reused socket from racing the upstream's close.
const KEEP_ALIVE_MS = 4000
const MAX_CONNECTIONS = 256

export class Host {
  readonly id: string
  readonly url: string
  readonly origin: string
  readonly weight: number
  readonly kind: 'static' | 'worker'
  readonly pool: Pool
  /** precomputed for the hot path: written by setHealth/setDrain, read by the balancer */
  available = true
  healthy = true
  ejected = false
  draining = false
  inflight = 0
  requests = 0
  /** smooth weighted round-robin state, owned by the balancer */
  currentWeight = 0
  private idleWaiters: Array<() => void> = []

  constructor (o: HostOptions) {
    this.id = o.id
    this.url = o.url
    this.weight = o.weight ?? 1
    this.kind = o.kind ?? 'static'
    // a worker's url is `unix:/path.sock`, which has no origin; the pool still needs an http one
    this.origin = o.socketPath ? 'http://localhost' : new URL(o.url).origin
    this.pool = new Pool(this.origin, {
      connections: MAX_CONNECTIONS,
      pipelining: 1,
      keepAliveTimeout: KEEP_ALIVE_MS,
      keepAliveTimeoutThreshold: 1000,
      connectTimeout: o.connectTimeoutMs,
      headersTimeout: o.headersTimeoutMs,
      bodyTimeout: o.bodyTimeoutMs,
      // a proxy forwards what it is given; undici's own limit would reject large upstream headers
      maxHeaderSize: 64 * 1024,
      ...(o.socketPath ? { socketPath: o.socketPath } : {}),
    })
  }

  setHealthy (healthy: boolean): void {
    this.healthy = healthy
    this.refresh()
  }

  setEjected (ejected: boolean): void {
    this.ejected = ejected
    this.refresh()
  }

  /** Stop routing new requests here; in-flight ones finish. */
  setDraining (draining: boolean): void {
    this.draining = draining
    this.refresh()
  }

  private refresh (): void {
    this.available = this.healthy && !this.ejected && !this.draining
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

  async close (): Promise<void> {
    await this.pool.close().catch(() => this.pool.destroy())
  }

  toJSON (): Record<string, unknown> {
    return {
      id: this.id,
      url: this.url,
      weight: this.weight,
      healthy: this.available,
      state: this.draining ? 'draining' : this.ejected ? 'ejected' : this.healthy ? 'healthy' : 'unhealthy',
      inflight: this.inflight,
      requests: this.requests,
    }
  }
}
