/**
 * @module balancer/balancer
 * Who is next. A policy only reads `host.available`; it never changes health.
 */
import type { Host } from '../upstream/host.js'
import type { Cluster } from '../upstream/cluster.js'
import { RoundRobin } from './round-robin.js'
import { LeastRequest } from './least-request.js'
import { ConsistentHash } from './consistent-hash.js'
import { parseHashOn, type PickContext } from './hash-key.js'

export interface Balancer {
  /**
   * The next available host, never `exclude` when another is available (a retry does not go back
   * to the host that just failed). undefined when no host is available. `r`: the request, read by a
   * policy that hashes it (consistent-hash).
   */
  pick (exclude?: Host, r?: PickContext): Host | undefined
}

export type BalancerPolicy = 'round-robin' | 'least-request' | 'consistent-hash'

/** config `balancer` (`on`: what consistent-hash hashes, checked by the config) */
export interface BalancerSettings {
  readonly policy: BalancerPolicy
  readonly on?: string | undefined
}

export function createBalancer (s: BalancerSettings, cluster: Cluster): Balancer {
  if (s.policy === 'least-request') return new LeastRequest(cluster)
  if (s.policy === 'consistent-hash') return new ConsistentHash(cluster, parseHashOn(s.on ?? '') ?? { kind: 'ip' })
  return new RoundRobin(cluster)
}
