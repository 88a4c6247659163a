/**
 * @module cores/snapshot
 * The primary's view of the upstreams as plain data, pushed to every proxy process on every change
 * (Envoy's read-only cluster snapshot per worker thread). A proxy process never judges health: it
 * takes `available` as the primary computed it (health, ejection, draining and panic mode included).
 * Kept a plain serialisable description so more routing state (pools, routes) can ride along.
 */
import type { Cluster } from '../../data/upstream/cluster.js'
import { Host, type PanicRouting } from '../../data/upstream/host.js'
import type { PoolRegistry } from '../../control/pools/pools.js'

export interface HostState {
  id: string
  url: string
  weight: number
  kind: 'static' | 'worker'
  slot?: number
  socketPath?: string
  healthy: boolean
  ejected: boolean
  draining: boolean
  panic: PanicRouting
  available: boolean
}

export interface Snapshot {
  /** increases with every push; a proxy process acknowledges the version it applied */
  version: number
  /** the worker generation serving */
  generation: number
  /** every pool's hosts, by pool name */
  pools: Record<string, HostState[]>
}

export function snapshotOf (pools: PoolRegistry, version: number, generation: number): Snapshot {
  const out: Record<string, HostState[]> = {}
  for (const name of pools.names()) out[name] = statesOf(pools.get(name)!.cluster)
  return { version, generation, pools: out }
}

function statesOf (cluster: Cluster): HostState[] {
  return cluster.hosts.map((h) => ({
      id: h.id,
      url: h.url,
      weight: h.weight,
      kind: h.kind,
      ...(h.slot !== undefined ? { slot: h.slot } : {}),
      ...(h.socketPath !== undefined ? { socketPath: h.socketPath } : {}),
      healthy: h.healthy,
      ejected: h.ejected,
      draining: h.draining,
      panic: h.panic,
      available: h.available,
  }))
}

/**
 * Make every pool of a proxy process match the snapshot (a pool the snapshot names but this process
 * does not have yet comes with the reload's config, sent first). Returns the hosts that left.
 */
export function applySnapshot (pools: PoolRegistry, s: Snapshot): Host[] {
  const removed: Host[] = []
  for (const [name, states] of Object.entries(s.pools)) {
    const p = pools.get(name)
    if (p !== undefined) removed.push(...applyHosts(p.cluster, states))
  }
  return removed
}

/**
 * Make `cluster` match the states: hosts are kept by id (their connections and counters go on), new
 * ones made, and the removed ones returned for the caller to close once idle.
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
