import t from 'tap'
import { startBackend, type Handler } from '../helpers/backend.js'
import { startClaylb } from '../helpers/claylb.js'
import { json, req } from '../helpers/http.js'
import { scrape, value } from '../helpers/metrics.js'
import type { Host } from '../../src/data/upstream/host.js'
import type { Cluster } from '../../src/data/upstream/cluster.js'
import { testCluster } from '../helpers/hosts.js'
import { OutlierDetector } from '../../src/control/health/outlier.js'
import { createLogger } from '../../src/shared/log.js'

const answer = (status: number): Handler => (q, s) => { q.resume(); s.statusCode = q.url === '/healthz' ? 200 : status; s.end(String(status)) }

t.test('a backend answering 500 to every request is ejected after the configured count, and comes back after the ejection time', async (t) => {
  const good = await startBackend(answer(200))
  const bad = await startBackend(answer(500))
  const lb = await startClaylb({
    config: {
      upstreams: [{ url: good.url, id: 'good' }, { url: bad.url, id: 'bad' }],
      outlier: { consecutiveFailures: 3, baseEjectionMs: 2500, maxEjectionPercent: 50 },
      log: { access: false },
    },
  })
  t.teardown(async () => { await lb.stop(); await good.close(); await bad.close() })
  const statuses: number[] = []
  for (let i = 0; i < 20; i++) statuses.push((await req(`${lb.url}/`)).status)
  t.equal(bad.count, 3, 'bad got exactly 3 requests: ejected at the third consecutive failure')
  t.equal(statuses.filter((s) => s === 500).length, 3, '500s are passed on, not retried (retry.onStatus is empty)')
  t.equal(good.count, 17)
  const ejected = await lb.waitForLog((l) => l['msg'] === 'upstream ejected')
  t.match(ejected, { upstream: 'bad', ejectionMs: 2500, ejections: 1, lastOutcome: 'http-5xx' })
  const status = await json<{ upstreams: Array<{ id: string, state: string, healthy: boolean }> }>(`${lb.admin}/status`)
  t.match(status.upstreams.find((u) => u.id === 'bad'), { state: 'ejected', healthy: false })
  const s = await scrape(lb.admin)
  t.equal(value(s, 'claylb_upstream_ejections_total', { upstream: 'bad' }), 1)
  t.equal(value(s, 'claylb_upstream_up', { upstream: 'bad' }), 0)
  t.equal(value(s, 'claylb_upstream_tries_total', { upstream: 'bad', outcome: 'http-5xx' }), 3)

  await lb.waitForLog((l) => l['msg'] === 'upstream back from ejection', 10_000)
  for (let i = 0; i < 4; i++) await req(`${lb.url}/`)
  t.ok(bad.count > 3, 'bad gets traffic again after its ejection time')
})

function hosts (n: number): { cluster: Cluster, list: Host[] } {
  const { cluster, hosts: list } = testCluster(n, [], 10_000)
  return { cluster, list }
}

t.test('outlier detector: what counts, the ejection cap, the growing ejection time, the recycle hook', async (t) => {
  const { cluster, list } = hosts(4)
  t.teardown(() => cluster.close())
  const logger = createLogger('silent')
  const d = new OutlierDetector(cluster, { enabled: true, consecutiveFailures: 3, baseEjectionMs: 60_000, maxEjectionMs: 100_000, maxEjectionPercent: 10 }, logger)
  t.teardown(() => d.close())
  const handed: string[] = []
  d.onEjected = (h) => handed.push(h.id)
  const [h0, h1, h2] = list as [Host, Host, Host]

  for (let i = 0; i < 10; i++) d.tryEnded(h0, 'local')
  t.equal(h0.ejected, false, "'local' outcomes (client gone) never count")
  d.tryEnded(h0, 'reset'); d.tryEnded(h0, 'timeout'); d.tryEnded(h0, 'ok'); d.tryEnded(h0, 'connect-failed'); d.tryEnded(h0, 'http-5xx')
  t.equal(h0.ejected, false, 'an ok in between resets the count')
  d.tryEnded(h0, 'http-5xx')
  t.equal(h0.ejected, true, 'third consecutive failure ejects')
  t.equal(h0.available, false)
  t.same(handed, ['h0'], 'onEjected told (the supervisor recycles ejected workers)')

  for (let i = 0; i < 5; i++) d.tryEnded(h1, 'reset')
  t.equal(h1.ejected, false, '10% of 4 hosts: only one may be ejected at once')

  const { cluster: c2, list: l2 } = hosts(1)
  t.teardown(() => c2.close())
  const d2 = new OutlierDetector(c2, { enabled: true, consecutiveFailures: 1, baseEjectionMs: 200, maxEjectionMs: 500, maxEjectionPercent: 0 }, logger)
  t.teardown(() => d2.close())
  const only = l2[0]!
  const until = async (pred: () => boolean): Promise<number> => {
    const t0 = Date.now()
    while (!pred() && Date.now() - t0 < 3000) await new Promise((r) => setTimeout(r, 5))
    return Date.now() - t0
  }
  d2.tryEnded(only, 'reset')
  t.equal(only.ejected, true, 'at least one host may always be ejected')
  t.ok(await until(() => !only.ejected) >= 190, 'back after base × 1')
  t.equal(only.ejected, false)
  d2.tryEnded(only, 'reset')
  t.equal(only.ejections, 2)
  t.ok(await until(() => !only.ejected) >= 390, 'the second ejection lasts base × 2')
  void h2
})
