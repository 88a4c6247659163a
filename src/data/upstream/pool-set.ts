/**
 * @module data/upstream/pool-set
 * A proxy process's pools: each one's hosts exactly as the primary's last snapshot describes them
 * (shared/process/snapshot.ts). Nothing here judges a host: no checks, no ejection, no panic
 * threshold (a Cluster made without panic settings never panics by itself); `available` and the
 * panic routing arrive decided. The config names the pools and their upstream TLS.
 */
import type { Config } from '../../shared/config/schema.js'
import { DEFAULT_POOL, WORKERS_POOL, hasUpstreams } from '../../shared/config/routing.js'
import { UpstreamTlsCache } from '../../shared/tls/certificates.js'
import type { HostState, Snapshot } from '../../shared/process/snapshot.js'
import { Cluster } from './cluster.js'
import { Host, type PanicRouting } from './host.js'

export class PoolSet {
  private readonly pools = new Map<string, Cluster>()
  readonly tlsCache = new UpstreamTlsCache()
  /** every pool's hosts, rebuilt when one changes */
  hosts: readonly Host[] = []
  private readonly listeners: Array<() => void> = []

  constructor (config: Config) {
    this.configure(config)
  }

  clusterOf (name: string): Cluster | undefined {
    return this.pools.get(name)
  }

  /** the pools `c` names exist (a new one empty until the snapshot that comes with it); those gone are closed */
  configure (c: Config): void {
    const wanted = new Map<string, Config['tls']>([[WORKERS_POOL, c.tls]])
    if (hasUpstreams(c)) wanted.set(DEFAULT_POOL, c.tls)
    for (const [name, p] of Object.entries(c.pools)) wanted.set(name, p.tls)
    for (const [name, cluster] of this.pools) {
      if (wanted.has(name)) continue
      this.pools.delete(name)
      cluster.close()
    }
    for (const [name, tls] of wanted) {
      if (this.pools.has(name)) continue
      const cluster = new Cluster()
      cluster.upstreamTls = this.tlsCache.get(tls, name === DEFAULT_POOL || name === WORKERS_POOL ? 'tls' : `pools.${name}.tls`)
      cluster.onChange(() => this.changed())
      this.pools.set(name, cluster)
    }
    this.changed()
  }

  /** Make every pool match the snapshot. Returns the hosts that left, for the caller to close once idle. */
  apply (s: Snapshot): Host[] {
    const removed: Host[] = []
    for (const [name, states] of Object.entries(s.pools)) {
      const cluster = this.pools.get(name)
      if (cluster !== undefined) removed.push(...applyHosts(cluster, states))
    }
    return removed
  }

  // ---- what the metrics counters watch (data/counting/counters.ts) ----

  get panic (): PanicRouting {
    let p: PanicRouting = 'off'
    for (const c of this.pools.values()) {
      if (c.panic === 'shed') return 'shed'
      if (c.panic === 'spread') p = 'spread'
    }
    return p
  }

  onChange (fn: () => void): void {
    this.listeners.push(fn)
  }

  close (): void {
    for (const c of this.pools.values()) c.close()
    this.pools.clear()
  }

  private changed (): void {
    const all: Host[] = []
    for (const c of this.pools.values()) for (const h of c.hosts) all.push(h)
    this.hosts = all
    for (const fn of this.listeners) fn()
  }
}

/**
 * Make `cluster` match the states: hosts are kept by id (their connections and counters go on), new
 * ones made, and the removed ones returned.
 */
function applyHosts (cluster: Cluster, states: readonly HostState[]): Host[] {
  const old = new Map(cluster.hosts.map((h) => [h.id, h]))
  const next: Host[] = []
  for (const st of states) {
    let h = old.get(st.id)
    if (h === undefined || h.url !== st.url) {
      h = new Host({
        id: st.id,
        url: st.url,
        weight: st.weight,
        kind: st.kind,
        ...(st.slot !== undefined ? { slot: st.slot } : {}),
        ...(st.socketPath !== undefined ? { socketPath: st.socketPath } : {}),
      })
    } else {
      old.delete(st.id)
      h.weight = st.weight
    }
    next.push(h)
  }
  cluster.replace(next)
  for (let i = 0; i < next.length; i++) {
    const h = next[i]!
    const st = states[i]!
    h.healthy = st.healthy
    h.ejected = st.ejected
    h.draining = st.draining
    h.panic = st.panic
    h.available = st.available
  }
  cluster.panic = states[0]?.panic ?? 'off'
  return [...old.values()]
}
