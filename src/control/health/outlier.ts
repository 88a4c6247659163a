/**
 * @module health/outlier
 * Passive health: Envoy's consecutive-failure outlier detection, fed by every try's outcome.
 * `consecutiveFailures` failed tries in a row (connect failure, timeout, reset, 5xx) eject a host for
 * `baseEjectionMs × its number of ejections` (capped at maxEjectionMs); the multiplier decays by one
 * for each base period the host then stays in. At most `maxEjectionPercent` of the hosts are ejected at
 * once, and always at least one may be. A 'local' outcome (the client left, claylb's own error) never
 * counts against a host. The detector only writes `host.setEjected()`; a spawned worker that gets
 * ejected is handed to `onEjected` (the supervisor recycles it instead of waiting).
 */
import type { Logger } from '../../shared/log.js'
import type { Cluster } from '../../data/upstream/cluster.js'
import type { Host } from '../../data/upstream/host.js'
import type { TryOutcome } from '../../data/upstream/retry-policy.js'

export interface OutlierSettings {
  enabled: boolean
  consecutiveFailures: number
  baseEjectionMs: number
  maxEjectionMs: number
  maxEjectionPercent: number
}

export class OutlierDetector {
  /** called after a host was ejected; the supervisor recycles workers from here */
  onEjected: ((host: Host) => void) | null = null
  private readonly timers = new Map<Host, NodeJS.Timeout>()

  constructor (private readonly cluster: Cluster, public settings: OutlierSettings, private readonly logger: Logger) {
    cluster.onChange(() => {
      // every try's outcome reaches the detector of the host's pool through the host
      for (const h of cluster.hosts) h.outlier = this
      // a removed host takes its pending un-ejection with it
      for (const [h, t] of this.timers) {
        if (!cluster.hosts.includes(h)) {
          clearTimeout(t)
          this.timers.delete(h)
        }
      }
    })
  }

  /** the request path: one comparison and one increment for an ordinary try */
  tryEnded (host: Host, outcome: TryOutcome): void {
    if (outcome === 'ok') {
      host.failures = 0
      return
    }
    if (outcome === 'local' || !this.settings.enabled) return
    if (++host.failures >= this.settings.consecutiveFailures && !host.ejected) this.eject(host, outcome)
  }

  private eject (host: Host, last: TryOutcome): void {
    const hosts = this.cluster.hosts
    let ejected = 0
    for (const h of hosts) if (h.ejected) ejected++
    const cap = Math.max(1, Math.floor((hosts.length * this.settings.maxEjectionPercent) / 100))
    if (ejected >= cap) return // the failure count stays: the host is ejected once room frees up
    const now = Date.now()
    if (host.ejections > 0 && host.unejectedAt > 0) {
      host.ejections = Math.max(0, host.ejections - Math.floor((now - host.unejectedAt) / this.settings.baseEjectionMs))
    }
    host.ejections++
    host.metrics?.ejections.inc()
    const ms = Math.min(this.settings.maxEjectionMs, this.settings.baseEjectionMs * host.ejections)
    host.ejectedAt = now
    host.failures = 0
    host.setEjected(true)
    this.logger.warn({ upstream: host.id, ejectionMs: ms, ejections: host.ejections, lastOutcome: last, requests: host.requests }, 'upstream ejected')
    const t = setTimeout(() => this.uneject(host), ms)
    t.unref()
    this.timers.set(host, t)
    this.onEjected?.(host)
  }

  private uneject (host: Host): void {
    this.timers.delete(host)
    host.unejectedAt = Date.now()
    host.failures = 0
    host.setEjected(false)
    this.logger.info({ upstream: host.id }, 'upstream back from ejection')
  }

  close (): void {
    for (const t of this.timers.values()) clearTimeout(t)
    this.timers.clear()
  }
}
