import t from 'tap'
import type { Host } from '../../src/data/upstream/host.js'
import type { Cluster } from '../../src/data/upstream/cluster.js'
import { testCluster } from '../helpers/hosts.js'
import { LeastRequest } from '../../src/data/balancer/least-request.js'
import { RoundRobin } from '../../src/data/balancer/round-robin.js'
import { startBackend, type Handler } from '../helpers/backend.js'
import { startClaylb } from '../helpers/claylb.js'
import { req } from '../helpers/http.js'

function cluster (n: number, weights: number[] = []): { c: Cluster, h: Host[] } {
  const { cluster: c, hosts: h } = testCluster(n, weights)
  return { c, h }
}

t.test('least-request (P2C) prefers the host with fewer requests in flight', async (t) => {
  const { c, h } = cluster(4)
  t.teardown(() => c.close())
  const lr = new LeastRequest(c)
  h[0]!.inflight = 50; h[1]!.inflight = 50; h[2]!.inflight = 50; h[3]!.inflight = 0
  const picks = new Map<Host, number>()
  for (let i = 0; i < 4000; i++) { const p = lr.pick()!; picks.set(p, (picks.get(p) ?? 0) + 1) }
  // P2C picks the idle host whenever it is one of the two samples: 1 - (3/4)^2 ≈ 44% (vs 25% random)
  t.ok(picks.get(h[3]!)! > 4000 * 0.38, `idle host picked ${picks.get(h[3]!)} / 4000`)
  for (let i = 0; i < 3; i++) t.ok(picks.get(h[i]!)! < 4000 * 0.25, `busy host ${i} picked less than its share (${picks.get(h[i]!)})`)

  h[3]!.inflight = 100
  let idle = 0
  for (let i = 0; i < 2000; i++) if (lr.pick() !== h[3]) idle++
  t.ok(idle > 2000 * 0.9, 'the busiest host loses nearly every comparison')
})

t.test('least-request: weights divide the load; only available hosts are picked', async (t) => {
  const { c, h } = cluster(2, [4, 1])
  t.teardown(() => c.close())
  const lr = new LeastRequest(c)
  h[0]!.inflight = 6; h[1]!.inflight = 2 // 6/4 = 1.5 < 2/1
  let heavy = 0
  for (let i = 0; i < 1000; i++) if (lr.pick() === h[0]) heavy++
  t.ok(heavy > 700, `the weight-4 host wins at load 1.5 vs 2 (${heavy}/1000)`)
  h[0]!.setDraining(true)
  for (let i = 0; i < 100; i++) t.equal(lr.pick(), h[1], 'draining host never picked')
  h[1]!.setHealthy(false)
  t.equal(lr.pick(), undefined, 'nothing available: undefined')
})

t.test('pick(exclude) never returns the excluded host while another is available, and falls back to it otherwise', async (t) => {
  for (const [name, make] of [['round-robin', (c: Cluster) => new RoundRobin(c)], ['least-request', (c: Cluster) => new LeastRequest(c)]] as const) {
    const { c, h } = cluster(3)
    const b = make(c)
    for (let i = 0; i < 500; i++) {
      const ex = h[i % 3]!
      const p = b.pick(ex)
      if (p === ex || p === undefined) { t.fail(`${name}: picked the excluded host`); break }
    }
    h[1]!.setHealthy(false)
    h[2]!.setHealthy(false)
    t.equal(b.pick(h[0]), h[0], `${name}: the excluded host when it is the only one available`)
    h[0]!.setHealthy(false)
    t.equal(b.pick(h[0]), undefined, `${name}: undefined when none is available`)
    t.pass(`${name}: exclude honoured in 500 picks`)
    await c.close()
  }
})

t.test('least-request through the CLI: a slow upstream gets fewer requests than a fast one', async (t) => {
  const slow = await startBackend((q, s) => { q.resume(); setTimeout(() => s.end('slow'), 150) })
  const fast = await startBackend((q, s) => { q.resume(); s.end('fast') })
  const lb = await startClaylb({
    config: { upstreams: [{ url: slow.url }, { url: fast.url }], balancer: { policy: 'least-request' }, healthCheck: { enabled: false }, log: { access: false } },
  })
  t.teardown(async () => { await lb.stop(); await slow.close(); await fast.close() })
  let next = 0
  const worker = async (): Promise<void> => { while (next++ < 200) await req(`${lb.url}/x`) }
  await Promise.all(Array.from({ length: 8 }, worker))
  t.ok(fast.count > slow.count * 3, `fast ${fast.count} vs slow ${slow.count}`)
  t.equal(fast.count + slow.count, 200)
})
