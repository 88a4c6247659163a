/**
 * @module data/balancer/policy
 * A pool's `balancer` setting made into its Balancer.
 */
import type { Cluster } from '../upstream/cluster.js'
import type { Balancer } from './balancer.js'
import { RoundRobin } from './round-robin.js'
import { LeastRequest } from './least-request.js'
import { ConsistentHash } from './consistent-hash.js'
import { parseHashOn } from './hash-key.js'

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
