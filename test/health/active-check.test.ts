import t from 'tap'
import { startBackend, type Backend, type Handler } from '../helpers/backend.js'
import { startClaylb } from '../helpers/claylb.js'
import { json, req, sleep } from '../helpers/http.js'

/**
 * A backend whose health can be flipped. It numbers what reaches it in one sequence: each proxied
 * request and each health check (passing or failing), so the test can say "after the Nth failed
 * check" instead of "after so many milliseconds" (timers run late on a loaded machine, order does not).
 */
interface Flaky {
  backend: Backend
  healthy: boolean
  /** every event in the order it reached the backend */
  events: Array<'request' | 'check-pass' | 'check-fail'>
}

async function flaky (name: string): Promise<Flaky> {
  const f = { healthy: true, events: [] } as unknown as Flaky
  const h: Handler = (q, s) => {
    q.resume()
    if (q.url === '/healthz') {
      f.events.push(f.healthy ? 'check-pass' : 'check-fail')
      s.statusCode = f.healthy ? 200 : 500
      s.end()
      return
    }
    f.events.push('request')
    s.end(name)
  }
  f.backend = await startBackend(h)
  return f
}

/** the index in `events` just after the nth event of `kind` from `from` on (-1: not seen yet) */
function after (f: Flaky, kind: Flaky['events'][number], n: number, from: number): number {
  for (let i = from, seen = 0; i < f.events.length; i++) if (f.events[i] === kind && ++seen === n) return i + 1
  return -1
}

const requests = (f: Flaky): number => f.events.filter((e) => e === 'request').length

const INTERVAL = 300
const UNHEALTHY = 2
const HEALTHY = 1
/** bounds the waits for checks to arrive, never asserted: progress, not time, decides */
const PATIENCE_MS = 60_000

t.test('a backend failing its health checks stops getting requests, and gets them again once healthy', async (t) => {
  const a = await flaky('a')
  const b = await flaky('b')
  const lb = await startClaylb({
    config: {
      upstreams: [{ url: a.backend.url, id: 'a' }, { url: b.backend.url, id: 'b' }],
      healthCheck: { path: '/healthz', intervalMs: INTERVAL, timeoutMs: 250, unhealthyThreshold: UNHEALTHY, healthyThreshold: HEALTHY },
      log: { access: false },
    },
  })
  t.teardown(async () => { await lb.stop(); await a.backend.close(); await b.backend.close() })

  for (let i = 0; i < 4; i++) await req(`${lb.url}/`)
  t.ok(b.events.includes('request'), 'b serves while healthy')
  t.ok(b.backend.checks > 0, 'b is being checked')

  // b fails its checks. claylb sends the next check only after it recorded the last one, so by the
  // time b sees failed check UNHEALTHY + 1 claylb had taken it out; the fence is one check later
  // still, so a request sent just before the decision has long arrived
  const failedFrom = b.events.length
  b.healthy = false
  const fenceAt = UNHEALTHY + 2
  let fence = -1
  let sent = 0
  let failed = 0
  for (const until = Date.now() + PATIENCE_MS; (fence = after(b, 'check-fail', fenceAt, failedFrom)) < 0 && Date.now() < until; sent++) {
    if ((await req(`${lb.url}/`)).status !== 200) failed++
    await sleep(5)
  }
  t.ok(fence > 0, `b saw ${fenceAt} failed checks`)
  t.equal(failed, 0, `every request answered 200 meanwhile (${sent} sent)`)
  // as many again after the fence: none of them may reach b
  for (let i = 0; i < 20; i++) t.equal((await req(`${lb.url}/`)).status, 200)
  const late = b.events.slice(fence).filter((e) => e === 'request').length
  t.equal(late, 0, `b got no request after its failed check ${fenceAt} (requests before it, since it failed: ${b.events.slice(failedFrom, fence).filter((e) => e === 'request').length})`)
  const status = await json<{ upstreams: Array<{ id: string, healthy: boolean, state: string }> }>(`${lb.admin}/status`)
  t.match(status.upstreams.find((u) => u.id === 'b'), { healthy: false, state: 'unhealthy' })
  await lb.waitForLog((l) => l['msg'] === 'upstream unhealthy' && l['upstream'] === 'b')

  // b heals: once it answered HEALTHY + 1 passing checks claylb had put it back (same ordering), and
  // with two hosts in rotation the next few requests reach it
  const healedFrom = b.events.length
  b.healthy = true
  let back = -1
  for (const until = Date.now() + PATIENCE_MS; (back = after(b, 'check-pass', HEALTHY + 1, healedFrom)) < 0 && Date.now() < until;) {
    await req(`${lb.url}/`)
    await sleep(5)
  }
  t.ok(back > 0, `b passed ${HEALTHY + 1} checks`)
  for (let i = 0; i < 10; i++) await req(`${lb.url}/`)
  t.ok(b.events.slice(back).includes('request'), 'b gets traffic again within 10 requests of being back')
})

t.test('panic mode: with every upstream unhealthy, spread keeps routing and shed answers 503 + retry-after', async (t) => {
  for (const mode of ['spread', 'shed'] as const) {
    const a = await flaky('a')
    const b = await flaky('b')
    a.healthy = b.healthy = false
    const lb = await startClaylb({
      config: {
        upstreams: [{ url: a.backend.url, id: 'a' }, { url: b.backend.url, id: 'b' }],
        healthCheck: { path: '/healthz', intervalMs: 100, timeoutMs: 250, unhealthyThreshold: 1 },
        panic: { thresholdPercent: 50, mode },
      },
    })
    await lb.waitForLog((l) => l['msg'] === 'panic mode: too few healthy upstreams')
    const ready = await req(`${lb.admin}/readyz`)
    t.equal(ready.status, 503, `${mode}: not ready with no healthy upstream`)
    const r = await req(`${lb.url}/`)
    if (mode === 'spread') {
      t.equal(r.status, 200, 'spread: still routed')
      t.ok(requests(a) + requests(b) === 1)
    } else {
      t.equal(r.status, 503, 'shed: 503')
      t.equal(r.headers['retry-after'], '1')
      t.equal(r.headers['content-type'], 'application/problem+json')
      t.equal(requests(a) + requests(b), 0, 'shed: nothing reached an upstream')
    }
    // one comes back: 1 of 2 healthy is not below 50%, so panic ends and only the healthy one serves
    a.healthy = true
    await lb.waitForLog((l) => l['msg'] === 'panic mode over')
    const before = requests(b)
    for (let i = 0; i < 6; i++) t.equal((await req(`${lb.url}/`)).body, 'a')
    t.equal(requests(b), before, `${mode}: unhealthy b gets nothing once out of panic`)
    await lb.stop()
    await a.backend.close()
    await b.backend.close()
  }
})
