/**
 * @module balancer/round-robin
 * Smooth weighted round-robin (nginx's algorithm): weights 2:1:1 give a,b,a,c — interleaved, exact
 * over every cycle, O(hosts) per pick and allocation-free.
 */
import type { Host } from '../upstream/host.js'
import type { Cluster } from '../upstream/cluster.js'
import type { Balancer } from './balancer.js'

export class RoundRobin implements Balancer {
  constructor (private readonly cluster: Cluster) {}

  pick (exclude?: Host): Host | undefined {
    const hosts = this.cluster.hosts
    let best: Host | undefined
    let total = 0
    for (let i = 0; i < hosts.length; i++) {
      const h = hosts[i]!
      if (!h.available || h === exclude) continue
      h.currentWeight += h.weight
      total += h.weight
      if (best === undefined || h.currentWeight > best.currentWeight) best = h
    }
    if (best === undefined) return exclude?.available ? exclude : undefined
    best.currentWeight -= total
    return best
  }
}
