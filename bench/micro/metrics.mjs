// Metrics observation (prom-client, the product's own copy): a counter and a histogram per request,
// through children bound once per upstream and status class, beside the label lookup on every call,
// and beside a plain field read by collect() at scrape time. (prom-client 15's bound child re-hashes its
// labels on every inc(), so binding alone does not make it cheap.)
import client from 'prom-client'
import { bench, reportAllocations, run, summary } from './harness.mjs'

const registry = new client.Registry()
const counter = new client.Counter({ name: 'bench_requests_total', help: 'x', labelNames: ['upstream', 'code'], registers: [registry] })
const hist = new client.Histogram({ name: 'bench_request_duration_seconds', help: 'x', labelNames: ['upstream'], buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5], registers: [registry] })
const boundCounter = counter.labels('10.0.0.5:3000', '2xx')
const boundHist = hist.labels('10.0.0.5:3000')

// the alternative: plain fields on the upstream object, read by a collect() callback at scrape time
const host = { requests2xx: 0 }
new client.Counter({
  name: 'bench_collected_requests_total', help: 'x', labelNames: ['upstream', 'code'], registers: [registry],
  collect () { this.reset(); this.inc({ upstream: '10.0.0.5:3000', code: '2xx' }, host.requests2xx) },
})

summary(() => {
  bench('counter: pre-bound child .inc()', () => boundCounter.inc())
  bench('counter: .inc({ upstream, code })', () => counter.inc({ upstream: '10.0.0.5:3000', code: '2xx' }))
  bench('counter: .labels(u, c).inc()', () => counter.labels('10.0.0.5:3000', '2xx').inc())
  bench('plain field ++, collected at scrape', () => { host.requests2xx++ })
  bench('histogram: pre-bound child .observe()', () => boundHist.observe(0.0042))
  bench('histogram: .observe({ upstream }, v)', () => hist.observe({ upstream: '10.0.0.5:3000' }, 0.0042))
})
await run()
await reportAllocations([
  ['counter pre-bound child', () => boundCounter.inc(), 1e6],
  ['plain field ++', () => { host.requests2xx++ }, 1e7],
  ['counter label lookup', () => counter.inc({ upstream: '10.0.0.5:3000', code: '2xx' }), 1e5],
  ['histogram pre-bound child', () => boundHist.observe(0.0042), 1e6],
  ['histogram label lookup', () => hist.observe({ upstream: '10.0.0.5:3000' }, 0.0042), 1e5],
])
