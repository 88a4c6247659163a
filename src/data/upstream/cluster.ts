/**
 * @module upstream/cluster
 * The set of hosts requests may go to (Envoy's "cluster"). Static upstreams and spawned workers are
 * both hosts here; the balancer picks from `hosts`.
 *
 * Panic mode lives here rather than in the balancer: it is re-evaluated only when a host's health
 * changes, and it acts by rewriting each host's `available`, so a pick never pays for it.
 */
import type { UpstreamTls } from '../../shared/tls/certificates.js'
import type { Host, PanicRouting } from './host.js'

export interface PanicSettings {
  /** panic when fewer than this share of the non-draining hosts are up; 0: never */
  thresholdPercent: number
  mode: 'spread' | 'shed'
}

export class Cluster {
  /** replaced (never mutated) on change, so a pick in progress sees a consistent list */
  hosts: readonly Host[] = []
  /** the routing every host has now ('off' unless in panic) */
  panic: PanicRouting = 'off'
  /** how this pool's https:// hosts are connected (its `tls`); undefined: the engine's default. Set
   * when the pool is made; a reload that would change it is refused (routing/reload-plan) */
  upstreamTls: UpstreamTls | undefined = undefined
  private listeners: Array<() => void> = []
  private panicListeners: Array<(panic: PanicRouting) => void> = []
  private stateListeners: Array<() => void> = []
  private readonly onHostState = (): void => {
    this.evaluatePanic()
    for (const fn of this.stateListeners) fn()
  }

  constructor (public panicSettings: PanicSettings = { thresholdPercent: 0, mode: 'spread' }) {}

  setPanicSettings (s: PanicSettings): void {
    if (s.thresholdPercent === this.panicSettings.thresholdPercent && s.mode === this.panicSettings.mode) return
    this.panicSettings = s
    this.evaluatePanic()
  }

  /** the whole list at once (a reload): one change, so a pick sees the old list or the new one */
  replace (hosts: readonly Host[]): void {
    for (const h of this.hosts) if (!hosts.includes(h) && h.onStateChange === this.onHostState) h.onStateChange = null
    for (const h of hosts) {
      if (this.hosts.includes(h)) continue
      h.onStateChange = this.onHostState
      h.setPanic(this.panic)
    }
    this.hosts = hosts
    this.changed()
  }

  add (host: Host): void {
    host.onStateChange = this.onHostState
    host.setPanic(this.panic)
    this.hosts = [...this.hosts, host]
    this.changed()
  }

  remove (host: Host): boolean {
    const next = this.hosts.filter((h) => h !== host)
    if (next.length === this.hosts.length) return false
    if (host.onStateChange === this.onHostState) host.onStateChange = null
    this.hosts = next
    this.changed()
    return true
  }

  get (id: string): Host | undefined {
    return this.hosts.find((h) => h.id === id)
  }

  /** hosts that are healthy, not ejected and not draining */
  upCount (): number {
    let n = 0
    for (const h of this.hosts) if (h.up) n++
    return n
  }

  /** returns the function that unsubscribes `fn` */
  onChange (fn: () => void): () => void {
    this.listeners.push(fn)
    return () => { this.listeners = this.listeners.filter((f) => f !== fn) }
  }

  /** told after any host's health, ejection or draining changed (and panic was re-evaluated) */
  onStateChange (fn: () => void): void {
    this.stateListeners.push(fn)
  }

  /** told when the cluster enters ('spread' | 'shed') or leaves ('off') panic mode */
  onPanic (fn: (panic: PanicRouting) => void): void {
    this.panicListeners.push(fn)
  }

  private changed (): void {
    this.evaluatePanic()
    for (const fn of this.listeners) fn()
  }

  /** Envoy's healthy panic threshold; draining hosts are left out: taking them away is deliberate. */
  evaluatePanic (): void {
    const { thresholdPercent, mode } = this.panicSettings
    let candidates = 0
    let up = 0
    for (const h of this.hosts) {
      if (h.draining) continue
      candidates++
      if (h.up) up++
    }
    const panic: PanicRouting = thresholdPercent > 0 && candidates > 0 && up * 100 < candidates * thresholdPercent ? mode : 'off'
    if (panic === this.panic) return
    this.panic = panic
    for (const h of this.hosts) h.setPanic(panic)
    for (const fn of this.panicListeners) fn(panic)
  }

  close (): void {
    const hosts = this.hosts
    this.hosts = []
    for (const h of hosts) h.close()
  }
}
