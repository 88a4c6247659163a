/**
 * @module control/process/snapshot
 * The primary writes the snapshot (shared/process/snapshot.ts) from its pools, whose checkers judged
 * every host: what each proxy process routes by until the next one.
 */
import type { Cluster } from '../../data/upstream/cluster.js'
import type { PoolRegistry } from '../pools/pools.js'
import type { HostState, Snapshot } from '../../shared/process/snapshot.js'

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
