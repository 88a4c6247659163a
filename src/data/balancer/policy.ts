/**
 * @module data/balancer/policy
 * A pool's `balancer` setting made into its Balancer.
 */
import type { Cluster } from '../upstream/cluster.js'
import type { Balancer } from './balancer.js'
import { RoundRobin } from './round-robin.js'
import { LeastRequest } from './least-request.js'

export type BalancerPolicy = 'round-robin' | 'least-request'

export function createBalancer (policy: BalancerPolicy, cluster: Cluster): Balancer {
  return policy === 'least-request' ? new LeastRequest(cluster) : new RoundRobin(cluster)
}
