/**
 * @module balancer/consistent-hash
 * A hash ring (ketama, as nginx's `hash … consistent` and Envoy's ring_hash): each host owns
 * VNODES × weight points on a 31-bit circle, a key goes to the first point at or after its hash. The
 * same key reaches the same host while it is available; removing a host moves only the keys its
 * points held (to the next points clockwise); an unavailable host's keys walk on to the next
 * available one and come back when it does. A request without the key is round-robined.
 *
 * The ring is rebuilt when the cluster's host list is replaced (a reload, DNS, a worker), checked by
 * identity on each pick; a pick is a binary search over typed arrays and allocates nothing.
 */
import type { Host } from '../upstream/host.js'
import type { Cluster } from '../upstream/cluster.js'
import type { Balancer } from './balancer.js'
import { hashKey, hashString, NO_KEY, type HashOn, type PickContext } from './hash-key.js'
import { RoundRobin } from './round-robin.js'

/** points per unit of weight: ketama's 160 keeps each host's share within a few % of its weight's */
export const VNODES = 160
/** the ring never exceeds this many points (very large weights are scaled down together) */
const MAX_POINTS = 1 << 18

export class ConsistentHash implements Balancer {
  private readonly fallback: RoundRobin
  private builtFor: readonly Host[] | null = null
  private weightsSum = 0
  private points = new Uint32Array(0)
  /** the host index (in `ringHosts`) of each point */
  private owners = new Uint32Array(0)
  private ringHosts: readonly Host[] = []

  constructor (private readonly cluster: Cluster, private readonly on: HashOn) {
    this.fallback = new RoundRobin(cluster)
  }

  pick (exclude?: Host, r?: PickContext): Host | undefined {
    const key = r === undefined ? NO_KEY : hashKey(this.on, r)
    if (key === NO_KEY) return this.fallback.pick(exclude)
    return this.pickHash(key, exclude)
  }

  /** the host of a key's hash (tests and the bench call it directly) */
  pickHash (key: number, exclude?: Host): Host | undefined {
    const hosts = this.cluster.hosts
    if (hosts !== this.builtFor || this.weightsChanged(hosts)) this.build(hosts)
    const points = this.points
    const n = points.length
    if (n === 0) return undefined
    // first point >= key, wrapping to 0
    let lo = 0
    let hi = n
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (points[mid]! < key) lo = mid + 1
      else hi = mid
    }
    const owners = this.owners
    const ring = this.ringHosts
    for (let i = 0; i < n; i++) {
      const h = ring[owners[(lo + i) % n]!]!
      if (h.available && h !== exclude) return h
    }
    return exclude?.available === true ? exclude : undefined
  }

  /** a reload re-weighs a kept host in place (routing/pools): the ring follows */
  private weightsChanged (hosts: readonly Host[]): boolean {
    let sum = 0
    for (let i = 0; i < hosts.length; i++) sum += hosts[i]!.weight * (i + 1)
    return sum !== this.weightsSum
  }

  private build (hosts: readonly Host[]): void {
    let total = 0
    let sum = 0
    for (let i = 0; i < hosts.length; i++) {
      total += hosts[i]!.weight
      sum += hosts[i]!.weight * (i + 1)
    }
    const scale = total * VNODES > MAX_POINTS ? MAX_POINTS / (total * VNODES) : 1
    const pts: Array<[number, number]> = []
    for (let i = 0; i < hosts.length; i++) {
      const h = hosts[i]!
      const count = Math.max(1, Math.round(h.weight * VNODES * scale))
      // the points hang on the host's id, not its place in the list: a host keeps them across reloads
      for (let v = 0; v < count; v++) pts.push([hashString(`${h.id}#${v}`), i])
    }
    // ties (rare) broken by id so every process builds the same ring
    pts.sort((a, b) => a[0] - b[0] || (hosts[a[1]]!.id < hosts[b[1]]!.id ? -1 : 1))
    this.points = Uint32Array.from(pts, (p) => p[0])
    this.owners = Uint32Array.from(pts, (p) => p[1])
    this.ringHosts = hosts
    this.builtFor = hosts
    this.weightsSum = sum
  }
}
