// Upstream pick: claylb's smooth weighted round-robin (dist/data/balancer/round-robin.js) beside a naive
// pick that filters the available hosts into a new array each time; and the consistent-hash ring
// (dist/data/balancer/consistent-hash.js) reading a header of the request.
import { bench, do_not_optimize, reportAllocations, requireDist, run, summary } from './harness.mjs'

const { RoundRobin } = await requireDist('balancer/round-robin.js')
const { ConsistentHash } = await requireDist('balancer/consistent-hash.js')
const { Cluster } = await requireDist('upstream/cluster.js')
const { Host } = await requireDist('upstream/host.js')

function cluster (weights) {
  const c = new Cluster()
  weights.forEach((w, i) => c.add(new Host({ id: `h${i}`, url: `http://127.0.0.1:${10000 + i}`, weight: w, connectTimeoutMs: 1000, headersTimeoutMs: 1000, bodyTimeoutMs: 1000 })))
  return c
}

const equal = cluster([1, 1, 1, 1])
const weighted = cluster([2, 1, 1, 1])
weighted.hosts[3].setHealthy(false)
const rr = new RoundRobin(equal)
const rrWeighted = new RoundRobin(weighted)
const h0 = equal.hosts[0]
const ring = new ConsistentHash(cluster([1, 1, 1, 1, 1, 1, 1, 1, 1, 1]), { kind: 'header', name: 'x-user' })
const requests = Array.from({ length: 1024 }, (_, k) => ({ path: '/', clientAddress: '10.0.0.1', rawHeaders: ['host', 'a.example', 'accept', '*/*', 'x-user', `user-${k}`] }))
let r = 0
const hashPick = () => ring.pick(undefined, requests[r++ & 1023])

let i = 0
const naive = { pick: () => { const ok = equal.hosts.filter((h) => h.available); return ok[i++ % ok.length] } }

summary(() => {
  bench('claylb RoundRobin.pick (4 hosts)', () => do_not_optimize(rr.pick()))
  bench('claylb RoundRobin.pick (weights 2:1:1, 1 down)', () => do_not_optimize(rrWeighted.pick()))
  bench('claylb RoundRobin.pick(exclude) (retry)', () => do_not_optimize(rr.pick(h0)))
  bench('naive: filter available, then i++ % n', () => do_not_optimize(naive.pick()))
  bench('claylb ConsistentHash.pick (10 hosts, header:x-user)', () => do_not_optimize(hashPick()))
})
await run()
await reportAllocations([
  ['claylb RoundRobin.pick', () => rr.pick()],
  ['claylb RoundRobin.pick weighted', () => rrWeighted.pick()],
  ['claylb RoundRobin.pick(exclude)', () => rr.pick(h0)],
  ['naive filter pick', () => naive.pick(), 1e6],
  ['claylb ConsistentHash.pick', hashPick],
])
for (const c of [equal, weighted]) for (const h of c.hosts) await h.close()
