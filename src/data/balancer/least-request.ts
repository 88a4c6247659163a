/**
 * @module balancer/least-request
 * Least outstanding requests by power of two choices: sample two available hosts, take the one with
 * fewer in flight (weights divide the count). The proxy owns every upstream connection, so `inflight`
 * is exact, not an estimate.
 */
import type { Host } from '../upstream/host.js'
import type { Cluster } from '../upstream/cluster.js'
import type { Balancer } from './balancer.js'

export class LeastRequest implements Balancer {
  constructor (private readonly cluster: Cluster) {}

  pick (exclude?: Host): Host | undefined {
    const hosts = this.cluster.hosts
    const n = hosts.length
    if (n === 0) return undefined
    let a: Host | undefined
    let b: Host | undefined
    // two random probes first; fall back to a scan when they land on unavailable hosts
    for (let tries = 0; tries < 4 && b === undefined; tries++) {
      const h = hosts[(Math.random() * n) | 0]!
      if (!h.available || h === exclude) continue
      if (a === undefined) a = h
      else if (h !== a || n === 1) b = h
    }
    if (a === undefined) {
      for (let i = 0; i < n; i++) {
        const h = hosts[i]!
        if (h.available && h !== exclude && (a === undefined || load(h) < load(a))) a = h
      }
      if (a === undefined) return exclude?.available ? exclude : undefined
      return a
    }
    if (b === undefined) return a
    return load(b) < load(a) ? b : a
  }
}

function load (h: Host): number {
  return h.inflight / h.weight
}
