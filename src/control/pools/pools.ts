/**
 * @module routing/pools
 * The lasting part of every pool, by name: its cluster (hosts, their health, ejections, panic), its
 * active checks and its outlier detector. A reload re-syncs it from the new config: a host whose
 * url (and id) stays is the same Host object, so its health, ejections and connections survive; a
 * new weight applies to it; a host that left stops getting requests at once and is closed once
 * its in-flight requests finished. The workers' pool is filled by the supervisor, not from config.
 */
import type { Logger } from '../../shared/log.js'
import type { PoolConfig } from '../../shared/config/schema.js'
import { Cluster, type PanicSettings } from '../../data/upstream/cluster.js'
import { Host, type PanicRouting } from '../../data/upstream/host.js'
import { ActiveHealthChecks, type HealthCheckSettings, type TlsConnect } from '../health/active-check.js'
import { OutlierDetector, type OutlierSettings } from '../health/outlier.js'
import { DnsDiscovery, type DnsSettings } from './dns-discovery.js'
import type { DnsUpstream, StaticUpstream } from '../../shared/config/schema.js'

export interface PoolHostsHooks {
  /** a host turned unhealthy / was ejected (the supervisor replaces a worker from here) */
  onUnhealthy (host: Host): void
  onEjected (host: Host): void
  /** TLS of the checks' connections to https:// upstreams (config `tls`); undefined: undici's defaults */
  tlsConnect?: TlsConnect | undefined
}

/** one pool's hosts and the checkers that judge them */
export class PoolHosts {
  readonly cluster: Cluster
  readonly outlier: OutlierDetector
  checks: ActiveHealthChecks
  private healthKey: string
  private started = false
  /** the config's `url` upstreams, and the `dns` ones being resolved (by their settings) */
  private staticUpstreams: readonly StaticUpstream[] = []
  private readonly discoveries = new Map<string, DnsDiscovery>()
  private make: ((u: StaticUpstream) => Host) | undefined
  private drainMs = 0

  constructor (readonly name: string, panic: PanicSettings, health: HealthCheckSettings, outlier: OutlierSettings, private readonly logger: Logger, private readonly hooks: PoolHostsHooks) {
    this.cluster = new Cluster(panic)
    this.cluster.onPanic((p) => {
      if (p === 'off') logger.info({ pool: name, up: this.cluster.upCount(), hosts: this.cluster.hosts.length }, 'panic mode over')
      else logger.warn({ pool: name, mode: p, up: this.cluster.upCount(), hosts: this.cluster.hosts.length, thresholdPercent: this.cluster.panicSettings.thresholdPercent }, 'panic mode: too few healthy upstreams')
    })
    this.outlier = new OutlierDetector(this.cluster, outlier, logger)
    this.outlier.onEjected = (h) => hooks.onEjected(h)
    this.checks = this.newChecks(health)
    this.healthKey = JSON.stringify(health)
  }

  private newChecks (s: HealthCheckSettings): ActiveHealthChecks {
    const c = new ActiveHealthChecks(this.cluster, s, this.logger, this.hooks.tlsConnect)
    c.onUnhealthy = (h) => this.hooks.onUnhealthy(h)
    return c
  }

  start (): void {
    this.started = true
    this.checks.start()
  }

  /** new settings: checks restart when theirs changed (the hosts keep their health meanwhile) */
  configure (panic: PanicSettings, health: HealthCheckSettings, outlier: OutlierSettings): void {
    this.cluster.setPanicSettings(panic)
    this.outlier.settings = outlier
    const key = JSON.stringify(health)
    if (key === this.healthKey) return
    this.healthKey = key
    this.checks.close()
    this.checks = this.newChecks(health)
    if (this.started) this.checks.start()
  }

  /**
   * Make the static hosts those of `upstreams` and of the `dns` upstreams' last good sets: keep,
   * re-weigh, add, and take out the rest (they drain: in-flight requests finish, then their
   * connections close, within `drainMs`).
   */
  syncHosts (upstreams: PoolConfig['upstreams'], make: (u: StaticUpstream) => Host, drainMs: number): void {
    this.staticUpstreams = upstreams
    this.make = make
    this.drainMs = drainMs
    this.applyHosts()
  }

  /**
   * Resolve these `dns` upstreams from now on (the control plane only: proxy processes get the hosts
   * in the snapshot); an entry whose settings stay keeps its resolver and its last good set.
   */
  discover (entries: readonly DnsUpstream[], settings: DnsSettings): void {
    const wanted = new Map(entries.map((e) => [JSON.stringify([e, settings]), e]))
    let changed = false
    for (const [k, d] of this.discoveries) {
      if (wanted.has(k)) continue
      d.close()
      this.discoveries.delete(k)
      changed = true
    }
    for (const [k, e] of wanted) {
      if (this.discoveries.has(k)) continue
      this.discoveries.set(k, new DnsDiscovery(e, settings, this.logger, () => this.applyHosts()))
    }
    if (changed) this.applyHosts()
  }

  /** every `dns` upstream has had its first answer (or failed it) */
  async resolved (): Promise<void> {
    await Promise.all([...this.discoveries.values()].map((d) => d.first))
  }

  /** resolutions of each `dns` upstream, for the metrics */
  dnsTallies (): Array<{ dns: string, ok: number, failed: number }> {
    return [...this.discoveries.values()].map((d) => ({ dns: d.entry.dns, ...d.tally }))
  }

  private applyHosts (): void {
    const make = this.make
    if (make === undefined) return
    const upstreams = [...this.staticUpstreams]
    for (const d of this.discoveries.values()) upstreams.push(...d.found)
    const drainMs = this.drainMs
    const byKey = new Map<string, Host>()
    for (const h of this.cluster.hosts) byKey.set(hostKey(h.url, h.id), h)
    const keep = new Set<Host>()
    const next: Host[] = []
    for (const u of upstreams) {
      const old = byKey.get(hostKey(u.url, u.id ?? new URL(u.url).host))
      if (old !== undefined && !keep.has(old)) {
        old.weight = u.weight
        keep.add(old)
        next.push(old)
      } else next.push(make(u))
    }
    const leaving = this.cluster.hosts.filter((h) => !keep.has(h))
    this.cluster.replace(next)
    for (const h of leaving) retireHost(h, drainMs, this.logger, 'upstream removed (reload or DNS): draining')
  }

  /** the pool left the config: every host drains and closes */
  retireAll (drainMs: number): void {
    this.endDiscovery()
    const leaving = this.cluster.hosts
    this.cluster.replace([])
    for (const h of leaving) retireHost(h, drainMs, this.logger)
  }

  private endDiscovery (): void {
    for (const d of this.discoveries.values()) d.close()
    this.discoveries.clear()
  }

  close (): void {
    this.endDiscovery()
    this.checks.close()
    this.outlier.close()
    this.cluster.close()
  }
}

function hostKey (url: string, id: string): string {
  return `${url}\n${id}`
}

/** out of every pool: no new request; closed once idle (or after drainMs) */
export function retireHost (h: Host, drainMs: number, logger: Logger, why = 'upstream removed by reload: draining'): void {
  h.setDraining(true)
  logger.info({ upstream: h.id, inflight: h.inflight }, why)
  void h.waitIdle(drainMs).then((idle) => {
    if (!idle) logger.warn({ upstream: h.id, inflight: h.inflight }, 'removed upstream still had requests in flight after the drain time; closing')
    h.close()
  })
}

/**
 * Every pool's hosts by name, and one view over all of them for what reports on every host (the
 * metrics, /status, /readyz, the admin drain).
 */
export class PoolRegistry {
  private readonly pools = new Map<string, PoolHosts>()
  /** every pool's hosts, rebuilt when one changes */
  hosts: readonly Host[] = []
  private listeners: Array<() => void> = []

  get (name: string): PoolHosts | undefined {
    return this.pools.get(name)
  }

  /** a pool's hosts as the data plane routes to them (data/data-plane.ts ClusterSource) */
  clusterOf (name: string): Cluster | undefined {
    return this.pools.get(name)?.cluster
  }

  names (): string[] {
    return [...this.pools.keys()]
  }

  add (p: PoolHosts): void {
    this.pools.set(p.name, p)
    p.cluster.onChange(() => this.changed())
    this.changed()
  }

  remove (name: string): void {
    const p = this.pools.get(name)
    if (p === undefined) return
    this.pools.delete(name)
    this.changed()
    p.close()
  }

  private changed (): void {
    const all: Host[] = []
    for (const p of this.pools.values()) for (const h of p.cluster.hosts) all.push(h)
    this.hosts = all
    for (const fn of this.listeners) fn()
  }

  onChange (fn: () => void): void {
    this.listeners.push(fn)
  }

  /** the first host with this id (ids are unique within a pool) */
  host (id: string): Host | undefined {
    return this.hosts.find((h) => h.id === id)
  }

  upCount (): number {
    let n = 0
    for (const h of this.hosts) if (h.up) n++
    return n
  }

  /** the worst panic of any pool: 'shed' over 'spread' over 'off' */
  get panic (): PanicRouting {
    let p: PanicRouting = 'off'
    for (const x of this.pools.values()) {
      if (x.cluster.panic === 'shed') return 'shed'
      if (x.cluster.panic === 'spread') p = 'spread'
    }
    return p
  }

  /** each pool's panic state, for /status */
  panics (): Record<string, PanicRouting> {
    const out: Record<string, PanicRouting> = {}
    for (const [n, p] of this.pools) out[n] = p.cluster.panic
    return out
  }

  start (): void {
    for (const p of this.pools.values()) p.start()
  }

  close (): void {
    const all = [...this.pools.values()]
    this.pools.clear()
    for (const p of all) p.close()
  }
}
