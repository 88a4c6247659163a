/**
 * @module balancer/balancer
 * Who is next. A policy only reads `host.available`; it never changes health.
 */
import type { Host } from '../upstream/host.js'
import type { Cluster } from '../upstream/cluster.js'
import { RoundRobin } from './round-robin.js'
import { LeastRequest } from './least-request.js'

export interface Balancer {
  /**
   * The next available host, never `exclude` when another is available (a retry does not go back
   * to the host that just failed). undefined when no host is available.
   */
  pick (exclude?: Host): Host | undefined
}

export type BalancerPolicy = 'round-robin' | 'least-request'

export function createBalancer (policy: BalancerPolicy, cluster: Cluster): Balancer {
  return policy === 'least-request' ? new LeastRequest(cluster) : new RoundRobin(cluster)
}
