/**
 * Hosts in a Cluster for unit tests of the balancer and the health modules (nothing listens on them).
 */
import { Host } from '../../src/data/upstream/host.js'
import { Cluster } from '../../src/data/upstream/cluster.js'

export function testCluster (n: number, weights: number[] = [], basePort = 20_000): { cluster: Cluster, hosts: Host[] } {
  const cluster = new Cluster()
  const hosts: Host[] = []
  for (let i = 0; i < n; i++) {
    const h = new Host({ id: `h${i}`, url: `http://127.0.0.1:${basePort + i}`, weight: weights[i] ?? 1 })
    cluster.add(h)
    hosts.push(h)
  }
  return { cluster, hosts }
}
