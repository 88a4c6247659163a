import t from 'tap'
import { startBackend, type Backend, type Handler } from '../helpers/backend.js'
import { startClaylb } from '../helpers/claylb.js'
import { req } from '../helpers/http.js'
import { scrape, value } from '../helpers/metrics.js'

const unavailable: Handler = (q, s) => { q.resume(); s.statusCode = 503; s.setHeader('retry-after', '7'); s.end('busy') }
const hangUp: Handler = (q) => { q.socket.destroy() }

const REQUESTS = 250
const CONCURRENCY = 30
const ATTEMPTS = 3

async function load (url: string): Promise<number[]> {
  const statuses: number[] = []
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < REQUESTS) {
      next++
      statuses.push((await req(`${url}/x`)).status)
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker))
  return statuses
}

async function run (handler: Handler, retry: Record<string, unknown>): Promise<{ attempts: number, statuses: number[], retried: number, exhausted: number, retryAfter: string | undefined }> {
  const backends: Backend[] = await Promise.all([startBackend(handler), startBackend(handler), startBackend(handler)])
  const lb = await startClaylb({
    config: {
      upstreams: backends.map((b) => ({ url: b.url })),
      retry: { attempts: ATTEMPTS, ...retry },
      healthCheck: { enabled: false },
      outlier: { enabled: false },
      log: { access: false },
    },
  })
  try {
    const statuses = await load(lb.url)
    const one = await req(`${lb.url}/one`)
    const s = await scrape(lb.admin)
    return {
      attempts: backends.reduce((n, b) => n + b.count, 0),
      statuses,
      retried: value(s, 'claylb_retries_total'),
      exhausted: value(s, 'claylb_retry_budget_exhausted_total'),
      retryAfter: one.headers['retry-after'] as string | undefined,
    }
  } finally {
    await lb.stop()
    await Promise.all(backends.map((b) => b.close()))
  }
}

// The budget caps CONCURRENT retries at max(minRetryConcurrency, budgetPercent% of requests in flight)
// (Envoy's retry_budget). A request being retried still counts as in flight, so with C clients the
// retry share is at most budget / (1 - budget) of first tries: 25% at a 20% budget.
// 5% on top for scheduling noise; the no-budget control run shows what the bound guards against (3×).
// The floor (minRetryConcurrency) is set to 0 here: it exists to let a lightly loaded proxy retry,
// so at the tail of a run, with few requests left in flight, it would allow more than the percentage.
const bound = (budgetPercent: number): number => Math.ceil((REQUESTS + 1) * (1 + budgetPercent / (100 - budgetPercent)) * 1.05)

t.test('all backends answering 503 (retried on status): attempts stay within the budget, no retry storm', async (t) => {
  const storm = await run(unavailable, { onStatus: [503], budgetPercent: 100, minRetryConcurrency: 1000 })
  t.equal(storm.attempts, (REQUESTS + 1) * ATTEMPTS, `without a budget every request makes ${ATTEMPTS} attempts (${storm.attempts})`)

  const r = await run(unavailable, { onStatus: [503], budgetPercent: 20, minRetryConcurrency: 0 })
  t.ok(r.attempts <= bound(20), `with a 20% budget: ${r.attempts} attempts for ${REQUESTS + 1} requests (bound ${bound(20)})`)
  t.ok(r.retried > 0, `some requests were retried (${r.retried})`)
  t.ok(r.exhausted > 0, `the budget refused retries (${r.exhausted})`)
  t.equal(r.attempts, REQUESTS + 1 + r.retried, 'claylb_retries_total counts every extra attempt')
  t.ok(r.statuses.every((s) => s === 503), 'clients get the upstream 503')
  t.equal(r.retryAfter, '7', "the upstream's retry-after is passed on")
})

t.test('all backends resetting connections: the same bound', async (t) => {
  const r = await run(hangUp, { budgetPercent: 20, minRetryConcurrency: 0 })
  t.ok(r.attempts <= bound(20), `${r.attempts} attempts for ${REQUESTS + 1} requests (bound ${bound(20)})`)
  t.ok(r.retried > 0)
  t.ok(r.statuses.every((s) => s === 502), 'clients get 502')
})
