/**
 * @module data/balancer/balancer
 * Who is next. A policy only reads `host.available`; it never changes health.
 */
import type { Host } from '../upstream/host.js'
import type { PickContext } from './hash-key.js'

export interface Balancer {
  /**
   * The next available host, never `exclude` when another is available (a retry does not go back
   * to the host that just failed). undefined when no host is available. `r`: the request, read by a
   * policy that hashes it (consistent-hash).
   */
  pick (exclude?: Host, r?: PickContext): Host | undefined
}
