// The access log's line (dist/data/observe/access-log.js) into its batch buffer, per request: the
// default JSON fields, every field, and the combined format, beside the naive line (Date.now,
// JSON.stringify of an object, Buffer.from per line) and the request id and traceparent a request makes.
import { bench, do_not_optimize, reportAllocations, requireDist, run, summary } from './harness.mjs'

const { createAccessLog, DEFAULT_FIELDS, ACCESS_FIELDS } = await requireDist('data/observe/access-log.js')
const { newRequestId } = await requireDist('data/observe/request-id.js')
const { Tracer } = await requireDist('data/observe/trace.js')

// a sink that keeps one 4 KB batch and starts over when it is full (no I/O in the measure)
const batch = Buffer.allocUnsafe(4096)
let used = 0
const sink = {
  write (s) { if (used + s.length > 4096) used = 0; used += batch.write(s, used, 'latin1') },
  writeBytes (b, n) { if (used + n > 4096) used = 0; used += b.copy(batch, used, 0, n) },
  flush () {}, reopen () {}, dropped: 0,
}
const ex = {
  method: 'GET', path: '/api/v1/items?page=2', hostHeader: 'shop.example', clientStatus: 200, ended: 0, attempts: 1, replayed: false,
  requestId: '3f9a0c1b2d4e5f60-1k', traceId: '', rateLimit: '', bytesIn: 180, headOut: 120, bodyOut: 17, upstreamMs: 0.8,
  host: { id: '127.0.0.1:9001' }, pool: { name: 'default' }, route: { index: -1 }, protocol: 'HTTP/1.1',
  clientAddress: () => '10.1.2.3', tlsVersion: () => '', sni: () => '', header: (n) => n === 'user-agent' ? 'wrk' : '', idempotencyOutcome: () => '',
}
const json = createAccessLog({ format: 'json', fields: DEFAULT_FIELDS, name: 'claylb' }, sink)
const all = createAccessLog({ format: 'json', fields: ACCESS_FIELDS, name: 'claylb' }, sink)
const combined = createAccessLog({ format: 'combined', fields: [], name: 'claylb' }, sink)
const naive = () => {
  const line = JSON.stringify({ level: 30, time: Date.now(), pid: process.pid, name: 'claylb', method: ex.method, path: ex.path, status: ex.clientStatus, upstream: ex.host.id, attempts: ex.attempts, ms: 1.23, msg: 'request' }) + '\n'
  sink.write(line)
  return Buffer.from(line)
}
const now = Date.now()
const tracer = new Tracer(0, null)
const facts = { traceId: '', parentSpanId: '', spanId: '', sampled: false }

summary(() => {
  bench('claylb line, default JSON fields', () => json.request(ex, now, 1.23))
  bench('claylb line, every JSON field', () => all.request(ex, now, 1.23))
  bench('claylb line, combined', () => combined.request(ex, now, 1.23))
  bench('naive line: Date.now + JSON.stringify + Buffer.from', () => do_not_optimize(naive()))
})
summary(() => {
  bench('request id', () => do_not_optimize(newRequestId()))
  bench('traceparent, none incoming (sampleRatio 0)', () => { facts.spanId = ''; return do_not_optimize(tracer.headerLine(facts, '')) })
  bench('traceparent, one incoming', () => { facts.spanId = ''; return do_not_optimize(tracer.headerLine(facts, '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01')) })
})
await run()
await reportAllocations([
  ['claylb line, default JSON', () => json.request(ex, now, 1.23)],
  ['claylb line, combined', () => combined.request(ex, now, 1.23)],
  ['naive line', () => naive(), 1e6],
])
