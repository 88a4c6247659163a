/**
 * @module health/active-check
 * Active health checks: every host gets `GET healthCheck.path` every interval (shortened by a random
 * jitter so checks of many hosts spread out), through a small client of its own so that a saturated
 * request pool never makes a check time out. 2xx/3xx within the timeout pass (HAProxy, NGINX Plus).
 * `unhealthyThreshold` consecutive failures mark the host unhealthy, `healthyThreshold` consecutive
 * passes healthy again. The checker only writes `host.setHealthy()`.
 */
import net from 'node:net'
import type { Client } from 'undici'
import type { Logger } from '../../shared/log.js'
import type { Cluster } from '../../data/upstream/cluster.js'
import type { Host } from '../../data/upstream/host.js'
import { WORKER_HEALTH_PATH } from '../../shared/workers/protocol.js'
import { undici } from '../../shared/lazy-modules.js'

export interface HealthCheckSettings {
  enabled: boolean
  /** unset: a TCP connect for a static upstream (HAProxy's `check`), `GET /healthz` for a worker */
  path?: string | undefined
  intervalMs: number
  jitterPercent: number
  timeoutMs: number
  unhealthyThreshold: number
  healthyThreshold: number
}

const CHECK_HEADERS = { 'user-agent': 'claylb-health-check', accept: '*/*' }

/** TLS options of a check's connection (undici's `connect`) */
export interface TlsConnect { ca?: string[], servername?: string, rejectUnauthorized: boolean }

class HostCheck {
  private readonly client: Client
  private timer: NodeJS.Timeout | null = null
  private stopped = false
  private passes = 0
  private failures = 0

  constructor (readonly host: Host, private readonly s: HealthCheckSettings, private readonly logger: Logger, private readonly onUnhealthy: (host: Host) => void, tlsConnect?: TlsConnect) {
    const { Client } = undici()
    this.client = new Client(host.origin, {
      // an https:// upstream is checked with the CA and name the proxy trusts (config `tls`)
      ...(tlsConnect !== undefined ? { connect: tlsConnect } : {}),
      connectTimeout: s.timeoutMs,
      headersTimeout: s.timeoutMs,
      bodyTimeout: s.timeoutMs,
      keepAliveTimeout: Math.min(4000, s.intervalMs * 2),
      ...(host.socketPath ? { socketPath: host.socketPath } : {}),
    })
  }

  start (): void {
    // the first check at once: a host that is down at start is found within one timeout
    this.schedule(0)
  }

  private schedule (delayMs: number): void {
    if (this.stopped) return
    this.timer = setTimeout(() => { void this.check() }, delayMs)
    this.timer.unref()
  }

  private nextDelay (): number {
    // jitter only shortens the wait, so detection stays within interval × threshold
    return this.s.intervalMs * (1 - (Math.random() * this.s.jitterPercent) / 100)
  }

  private async check (): Promise<void> {
    this.timer = null
    let ok = false
    let detail = ''
    const path = this.host.kind === 'worker' ? this.s.path ?? WORKER_HEALTH_PATH : this.s.path
    if (path === undefined) {
      detail = await tcpCheck(this.host, this.s.timeoutMs)
      if (this.stopped) return
      this.record(detail === '', detail)
      this.schedule(this.nextDelay())
      return
    }
    try {
      const r = await this.client.request({
        method: 'GET',
        path,
        headers: CHECK_HEADERS,
        signal: AbortSignal.timeout(this.s.timeoutMs),
      })
      await r.body.dump()
      ok = r.statusCode >= 200 && r.statusCode < 400
      if (!ok) detail = `status ${r.statusCode}`
    } catch (err) {
      detail = (err as { code?: string }).code ?? (err as Error).name
    }
    if (this.stopped) return
    this.record(ok, detail)
    this.schedule(this.nextDelay())
  }

  private record (ok: boolean, detail: string): void {
    const h = this.host
    if (ok) {
      this.failures = 0
      this.passes++
      if (!h.healthy && this.passes >= this.s.healthyThreshold) {
        h.setHealthy(true)
        this.logger.info({ upstream: h.id, passes: this.passes }, 'upstream healthy')
      }
    } else {
      this.passes = 0
      this.failures++
      if (h.healthy && this.failures >= this.s.unhealthyThreshold) {
        h.setHealthy(false)
        // a draining host (a retiring worker closing its server) failing is expected, not news
        if (h.draining) this.logger.debug({ upstream: h.id, reason: detail }, 'draining upstream unhealthy')
        else {
          // requests: what it had been sent when it left the rotation (nothing more may follow)
          this.logger.warn({ upstream: h.id, failures: this.failures, reason: detail, requests: h.requests }, 'upstream unhealthy')
          this.onUnhealthy(h)
        }
      }
    }
  }

  stop (): void {
    this.stopped = true
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
    this.client.destroy().catch(() => {})
  }
}


/** A TCP connect within the timeout: what HAProxy's plain `check` does. */
function tcpCheck (host: Host, timeoutMs: number): Promise<string> {
  return new Promise((resolve) => {
    const u = new URL(host.url)
    const s = net.connect(Number(u.port || (u.protocol === 'https:' ? 443 : 80)), u.hostname.replace(/^\[|\]$/g, ''))
    const t = setTimeout(() => { s.destroy(); resolve('connect timeout') }, timeoutMs)
    s.once('connect', () => { clearTimeout(t); s.destroy(); resolve('') })
    s.once('error', (err: NodeJS.ErrnoException) => { clearTimeout(t); s.destroy(); resolve(err.code ?? err.message) })
  })
}

/** One HostCheck per host of the cluster, started and stopped as hosts come and go. */
export class ActiveHealthChecks {
  /** told when a host turns unhealthy; the supervisor replaces a worker from here */
  onUnhealthy: ((host: Host) => void) | null = null
  private readonly checks = new Map<Host, HostCheck>()
  private closed = false
  private unsubscribe: (() => void) | null = null

  constructor (private readonly cluster: Cluster, private readonly s: HealthCheckSettings, private readonly logger: Logger, private readonly tlsConnect?: TlsConnect) {}

  start (): void {
    if (!this.s.enabled) return
    this.sync()
    this.unsubscribe = this.cluster.onChange(() => this.sync())
  }

  private sync (): void {
    if (this.closed) return
    const current = new Set(this.cluster.hosts)
    for (const [host, check] of this.checks) {
      if (!current.has(host)) {
        check.stop()
        this.checks.delete(host)
      }
    }
    for (const host of current) {
      if (this.checks.has(host)) continue
      const check = new HostCheck(host, this.s, this.logger, (h) => this.onUnhealthy?.(h), this.tlsConnect)
      this.checks.set(host, check)
      check.start()
    }
  }

  close (): void {
    this.closed = true
    this.unsubscribe?.()
    for (const c of this.checks.values()) c.stop()
    this.checks.clear()
  }
}
