/**
 * A global limit's accuracy across 3 instances x 2 proxy processes on one Redis: a client over its
 * limit on every instance for at least 12 s is admitted rate x seconds + burst + 1 (within 5%), counted
 * by what the upstream received; a client under its limit at the same time is never refused. The
 * seconds are those between the first and the last admitted request's arrival at the upstream (a
 * loaded machine's latency, which can reach a second, does not widen them the way the client's own
 * window would), so the band is an invariant of counts, not of how fast the machine is. The rate is
 * low (5/s) so that a machine at load 45, which managed 15–17 requests a second here, is still well over
 * it. Prints the Redis round trips per 1,000 admitted requests.
 */
import t from 'tap'
import { startBackend } from '../helpers/backend.js'
import { startClaylb } from '../helpers/claylb.js'
import { req, sleep } from '../helpers/http.js'
import { startRedis } from '../helpers/redis.js'
import { scrape, value } from '../helpers/metrics.js'

const RATE = 5
const BURST = 8
const WINDOW_MS = 12_000

t.test('3 instances x 2 processes, one Redis: admitted within 5% of rate x seconds + burst; a key under its limit never refused', async (t) => {
  const redis = await startRedis({ useEnv: false })
  t.teardown(() => redis.close())
  const admitted = new Map<string, number>()
  let firstHot = 0
  let lastHot = 0
  const b = await startBackend((q, s) => {
    const k = String(q.headers['x-client'])
    admitted.set(k, (admitted.get(k) ?? 0) + 1)
    if (k === 'hot') {
      lastHot = performance.now()
      if (firstHot === 0) firstHot = lastHot
    }
    q.resume()
    s.end('ok')
  })
  t.teardown(() => b.close())
  const config = {
    upstreams: [{ url: b.url }],
    log: { access: false },
    listen: { processes: 2 },
    redis: { url: redis.url },
    rateLimits: [
      // first, so it sees every request; far above what this machine can send: its round trips are a
      // busy key's under its limit
      { name: 'roomy', match: { pathPrefix: '/' }, key: 'route', rate: '20000/s', burst: 1000, scope: 'global' },
      { name: 'per-client', match: { pathPrefix: '/' }, key: 'header:x-client', rate: `${RATE}/s`, burst: BURST, scope: 'global' },
    ],
  }
  const lbs = await Promise.all([0, 1, 2].map(() => startClaylb({ config })))
  for (const lb of lbs) t.teardown(() => lb.stop())

  const sent = { hot: 0, calm: 0 }
  const refusedCalm: number[] = []
  let stop = false
  const hot = async (url: string): Promise<void> => {
    while (!stop) {
      sent.hot++
      const r = await req(`${url}/`, { headers: { 'x-client': 'hot', connection: sent.hot % 4 === 0 ? 'close' : 'keep-alive' } })
      if (r.status !== 200 && r.status !== 429) throw new Error(`unexpected ${r.status} ${r.body}`)
    }
  }
  // one request every 800 ms at most: 1.25/s, a quarter of the limit, spread over the instances
  const calm = async (): Promise<void> => {
    let i = 0
    while (!stop) {
      sent.calm++
      const r = await req(`${lbs[i++ % 3]!.url}/`, { headers: { 'x-client': 'calm' } })
      if (r.status !== 200) refusedCalm.push(r.status)
      await sleep(800)
    }
  }
  const loops = [...lbs.flatMap((lb) => [hot(lb.url), hot(lb.url), hot(lb.url), hot(lb.url)]), calm()]
  await sleep(WINDOW_MS)
  stop = true
  await Promise.all(loops)
  const seconds = (lastHot - firstHot) / 1000
  const got = admitted.get('hot') ?? 0
  const expected = RATE * seconds + BURST + 1
  t.comment(`hot: sent ${sent.hot}, admitted ${got} in ${seconds.toFixed(2)} s; expected ${expected.toFixed(0)} (${(100 * got / expected).toFixed(1)}%)`)
  t.ok(sent.hot > expected * 1.5, `the client was over its limit (${sent.hot} sent)`)
  t.ok(got >= expected * 0.95 && got <= expected * 1.05, `admitted ${got} within 5% of ${expected.toFixed(0)}`)
  t.same(refusedCalm, [], `the calm client (${sent.calm} sent) was never refused`)
  t.equal(admitted.get('calm'), sent.calm, 'every calm request reached the upstream')
  let takes = 0
  for (const lb of lbs) takes += value(await scrape(lb.admin), 'claylb_rate_limit_store_takes_total', { limit: 'per-client' })
  const total = got + (admitted.get('calm') ?? 0)
  t.comment(`per-client: ${takes} Redis round trips for ${total} admitted (${(1000 * takes / total).toFixed(0)} per 1,000 admitted; ${sent.hot + sent.calm} requests in all)`)
  let roomy = 0
  for (const lb of lbs) roomy += value(await scrape(lb.admin), 'claylb_rate_limit_store_takes_total', { limit: 'roomy' })
  const all = sent.hot + sent.calm
  t.comment(`roomy (never over its limit): ${roomy} Redis round trips for ${all} admitted (${(1000 * roomy / all).toFixed(0)} per 1,000 admitted)`)
})
