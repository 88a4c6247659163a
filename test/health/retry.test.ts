import t from 'tap'
import { startBackend, type Handler } from '../helpers/backend.js'
import { startClaylb } from '../helpers/claylb.js'
import { req } from '../helpers/http.js'
import { scrape, value } from '../helpers/metrics.js'
import { RetryPolicy } from '../../src/data/upstream/retry-policy.js'

const hang: Handler = (q) => { q.resume() } // accepts, never answers
const named = (name: string): Handler => (q, s) => { q.resume(); q.on('end', () => s.end(name)) }

t.test('per-try timeout: a hung upstream costs a GET one per-try timeout, then the retry goes to another', async (t) => {
  const hung = await startBackend(hang)
  const ok = await startBackend(named('ok'))
  const lb = await startClaylb({
    config: {
      upstreams: [{ url: hung.url, id: 'hung' }, { url: ok.url, id: 'ok' }],
      retry: { attempts: 2, perTryTimeoutMs: 300 },
      healthCheck: { enabled: false },
      log: { access: false },
    },
  })
  t.teardown(async () => { await lb.stop(); await hung.close(); await ok.close() })
  const r = await req(`${lb.url}/a`) // round-robin: the first pick is the first upstream, the hung one
  t.equal(r.status, 200)
  t.equal(r.body, 'ok', 'retried on the other upstream')
  t.equal(hung.count, 1)
  const s = await scrape(lb.admin)
  t.equal(value(s, 'claylb_retries_total', { reason: 'timeout' }), 1)
  t.equal(value(s, 'claylb_upstream_tries_total', { upstream: 'hung', outcome: 'timeout' }), 1)

  // a POST may have been executed by the hung upstream: never retried
  let post = await req(`${lb.url}/order`, { method: 'POST', body: '{}' })
  if (post.body === 'ok') post = await req(`${lb.url}/order`, { method: 'POST', body: '{}' }) // round-robin sent it to ok first
  t.equal(post.status, 504, 'POST to the hung upstream: 504 after the per-try timeout')
  t.equal(hung.count, 2)
})

t.test('a retry never lands on the upstream that just failed while another is available', async (t) => {
  for (const policy of ['round-robin', 'least-request']) {
    const broken = await startBackend((q) => { q.socket.destroy() })
    const b = await startBackend(named('b'))
    const c = await startBackend(named('c'))
    const lb = await startClaylb({
      config: {
        upstreams: [{ url: broken.url, id: 'broken' }, { url: b.url }, { url: c.url }],
        balancer: { policy },
        retry: { attempts: 2 },
        healthCheck: { enabled: false },
        outlier: { enabled: false },
        log: { access: false },
      },
    })
    const statuses: number[] = []
    for (let i = 0; i < 40; i++) statuses.push((await req(`${lb.url}/x`)).status)
    t.ok(broken.count > 4, `${policy}: the broken upstream was tried (${broken.count})`)
    t.ok(statuses.every((s) => s === 200), `${policy}: every request succeeded on its second try: the retry avoided the broken upstream`)
    await lb.stop()
    await Promise.all([broken.close(), b.close(), c.close()])
  }
})

t.test('a retry does not start after the request deadline', async (t) => {
  const slowFail: Handler = (q) => { q.resume(); setTimeout(() => q.socket.destroy(), 250) }
  const a = await startBackend(slowFail)
  const b = await startBackend(slowFail)
  const lb = await startClaylb({
    config: {
      upstreams: [{ url: a.url }, { url: b.url }],
      retry: { attempts: 5, backoffBaseMs: 200, backoffMaxMs: 200 },
      timeouts: { requestMs: 400, headersMs: 400 },
      healthCheck: { enabled: false },
      outlier: { enabled: false },
    },
  })
  t.teardown(async () => { await lb.stop(); await a.close(); await b.close() })
  const r = await req(`${lb.url}/x`)
  t.equal(r.status, 504)
  await new Promise((resolve) => setTimeout(resolve, 700))
  t.ok(a.count + b.count <= 2, `at most the tries that fit in 400 ms were made (${a.count + b.count})`)
})

t.test('backoff: full jitter, base × 2^n capped', async (t) => {
  const p = new RetryPolicy({ attempts: 5, budgetPercent: 20, minRetryConcurrency: 3, backoffBaseMs: 25, backoffMaxMs: 250 })
  const max = (attempts: number): number => { let m = 0; for (let i = 0; i < 2000; i++) m = Math.max(m, p.backoffMs(attempts)); return m }
  const min = (attempts: number): number => { let m = Infinity; for (let i = 0; i < 2000; i++) m = Math.min(m, p.backoffMs(attempts)); return m }
  t.ok(max(1) <= 25 && max(1) > 20, 'first retry within [0, 25)')
  t.ok(max(2) <= 50 && max(2) > 40, 'second within [0, 50)')
  t.ok(max(10) <= 250 && max(10) > 200, 'capped at 250')
  t.ok(min(10) < 25, 'full jitter reaches down to 0')
  t.equal(p.allow('reset', 1, true, 0), true, 'the floor allows retries with nothing else in flight')
  p.active = 3
  t.equal(p.allow('reset', 1, true, 10), false, 'budget: max(3, 20% of 10) spent')
  t.equal(p.allow('reset', 1, true, 20), true, '20% of 20 = 4 > 3')
  t.equal(p.allow('reset', 1, false, 20), false, 'never when not replayable')
  t.equal(p.allow('local', 1, true, 20), false, 'never for local outcomes')
  t.equal(p.allow('reset', 5, true, 20), false, 'never past attempts')
  t.equal(p.allow('timeout', 1, true, 20), false, 'a timeout is retried only with a per-try timeout')
  t.equal(new RetryPolicy({ attempts: 2, budgetPercent: 20, minRetryConcurrency: 3, perTryTimeoutMs: 100 }).allow('timeout', 1, true, 0), true)
})
