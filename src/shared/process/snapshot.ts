/**
 * @module shared/process/snapshot
 * The primary's view of the upstreams as plain data, pushed to every proxy process on every change
 * (Envoy's read-only cluster snapshot per worker thread). A proxy process never judges health: it
 * takes `available` as the primary computed it (health, ejection, draining and panic mode included).
 * The control plane writes it (control/process/snapshot.ts), the data plane reads it
 * (data/upstream/pool-set.ts); a plain serialisable description so more routing state can ride along.
 */

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
  panic: 'off' | 'spread' | 'shed'
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
