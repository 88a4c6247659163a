/**
 * @module cores/snapshot
 * The primary's view of the upstreams as plain data, pushed to every proxy process on every change
 * (Envoy's read-only cluster snapshot per worker thread). A proxy process never judges health: it
 * takes `available` as the primary computed it (health, ejection, draining and panic mode included).
 * Kept a plain serialisable description so more routing state (pools, routes) can ride along.
 */
import type { Cluster } from '../upstream/cluster.js'
import { Host, type PanicRouting } from '../upstream/host.js'

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
  hosts: HostState[]
}

export function snapshotOf (cluster: Cluster, version: number, generation: number): Snapshot {
  return {
    version,
    generation,
    hosts: cluster.hosts.map((h) => ({
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
    })),
  }
}

export interface HostTimeouts {
  connectMs: number
  headersMs: number
  idleMs: number
}

/**
 * Make `cluster` (a proxy process's) match the snapshot: hosts are kept by id (their pools and
 * counters go on), new ones made, and the removed ones returned for the caller to close once idle.
 */
export function applySnapshot (cluster: Cluster, s: Snapshot, timeouts: HostTimeouts): Host[] {
  const old = new Map(cluster.hosts.map((h) => [h.id, h]))
  const next: Host[] = []
  for (const st of s.hosts) {
    let h = old.get(st.id)
    if (h === undefined || h.url !== st.url || h.weight !== st.weight) {
      h = new Host({
        id: st.id,
        url: st.url,
        weight: st.weight,
        kind: st.kind,
        ...(st.slot !== undefined ? { slot: st.slot } : {}),
        ...(st.socketPath !== undefined ? { socketPath: st.socketPath } : {}),
        connectTimeoutMs: timeouts.connectMs,
        headersTimeoutMs: timeouts.headersMs,
        bodyTimeoutMs: timeouts.idleMs,
      })
    } else {
      old.delete(st.id)
    }
    next.push(h)
  }
  cluster.replace(next)
  for (let i = 0; i < next.length; i++) {
    const h = next[i]!
    const st = s.hosts[i]!
    h.healthy = st.healthy
    h.ejected = st.ejected
    h.draining = st.draining
    h.panic = st.panic
    h.available = st.available
  }
  cluster.panic = s.hosts[0]?.panic ?? 'off'
  return [...old.values()]
}
