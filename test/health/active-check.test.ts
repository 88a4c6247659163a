import t from 'tap'
import { startBackend, type Backend, type Handler } from '../helpers/backend.js'
import { startClaylb } from '../helpers/claylb.js'
import { json, req, sleep } from '../helpers/http.js'

interface Flaky { backend: Backend, healthy: boolean, proxiedAt: number[] }

async function flaky (name: string): Promise<Flaky> {
  const f = { healthy: true, proxiedAt: [] as number[] } as Flaky
  const h: Handler = (q, s) => {
    q.resume()
    if (q.url === '/healthz') {
      s.statusCode = f.healthy ? 200 : 500
      s.end()
      return
    }
    f.proxiedAt.push(Date.now())
    s.end(name)
  }
  f.backend = await startBackend(h)
  return f
}

const INTERVAL = 300
const UNHEALTHY = 2
const HEALTHY = 1
// the machine is shared with other test runs: timers may fire late, so the bound gets this much slack
const SLACK = 500

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
  t.ok(b.proxiedAt.length > 0, 'b serves while healthy')
  t.ok(b.backend.checks > 0, 'b is being checked')

  const failedAt = Date.now()
  b.healthy = false
  const bound = INTERVAL * UNHEALTHY + INTERVAL
  // keep sending for the bound and a second more
  while (Date.now() - failedAt < bound + SLACK + 1000) {
    t.equal((await req(`${lb.url}/`)).status, 200)
    await sleep(5)
  }
  const last = b.proxiedAt.filter((x) => x >= failedAt).at(-1) ?? failedAt
  t.ok(last - failedAt <= bound + SLACK, `b's last request came ${last - failedAt} ms after it failed (bound ${bound} ms + ${SLACK} ms slack)`)
  const quietSince = failedAt + bound + SLACK
  t.equal(b.proxiedAt.filter((x) => x > quietSince).length, 0, 'b got no request after the bound')
  const status = await json<{ upstreams: Array<{ id: string, healthy: boolean, state: string }> }>(`${lb.admin}/status`)
  t.match(status.upstreams.find((u) => u.id === 'b'), { healthy: false, state: 'unhealthy' })
  await lb.waitForLog((l) => l['msg'] === 'upstream unhealthy' && l['upstream'] === 'b')

  const healedAt = Date.now()
  b.healthy = true
  const back = INTERVAL * HEALTHY + INTERVAL
  let seenAt = 0
  while (Date.now() - healedAt < back + SLACK + 2000) {
    await req(`${lb.url}/`)
    const hit = b.proxiedAt.find((x) => x >= healedAt)
    if (hit !== undefined) { seenAt = hit; break }
    await sleep(5)
  }
  t.ok(seenAt > 0, 'b gets traffic again')
  t.ok(seenAt - healedAt <= back + SLACK, `b's traffic came back ${seenAt - healedAt} ms after it healed (bound ${back} ms + ${SLACK} ms slack)`)
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
    await lb.waitForLog((l) => l['msg'] === 'panic mode: too few healthy upstreams', 5000)
    const ready = await req(`${lb.admin}/readyz`)
    t.equal(ready.status, 503, `${mode}: not ready with no healthy upstream`)
    const r = await req(`${lb.url}/`)
    if (mode === 'spread') {
      t.equal(r.status, 200, 'spread: still routed')
      t.ok(a.proxiedAt.length + b.proxiedAt.length === 1)
    } else {
      t.equal(r.status, 503, 'shed: 503')
      t.equal(r.headers['retry-after'], '1')
      t.equal(r.headers['content-type'], 'application/problem+json')
      t.equal(a.proxiedAt.length + b.proxiedAt.length, 0, 'shed: nothing reached an upstream')
    }
    // one comes back: 1 of 2 healthy is not below 50%, so panic ends and only the healthy one serves
    a.healthy = true
    await lb.waitForLog((l) => l['msg'] === 'panic mode over', 5000)
    const before = b.proxiedAt.length
    for (let i = 0; i < 6; i++) t.equal((await req(`${lb.url}/`)).body, 'a')
    t.equal(b.proxiedAt.length, before, `${mode}: unhealthy b gets nothing once out of panic`)
    await lb.stop()
    await a.backend.close()
    await b.backend.close()
  }
})
