/**
 * Request ids and W3C Trace Context end to end: an id is made (or kept from a trusted forwarder),
 * sent upstream, returned, and in problem+json answers; traceparent keeps the trace, gets claylb's own
 * span, starts a trace when absent; sampled requests are exported over OTLP/HTTP (protobuf), decoded
 * here with the official opentelemetry-proto definitions.
 */
import t from 'tap'
import { startClaylb } from '../helpers/claylb.js'
import { startBackend } from '../helpers/backend.js'
import { req } from '../helpers/http.js'
import { rawExchange, statusOf, bodyOf } from '../helpers/raw.js'
import { startOtlpReceiver } from '../helpers/otlp-receiver.js'

const TP = /^00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])$/

t.test('request ids: made unique, kept only from trusted forwarders, sent both ways and in problems', async (t) => {
  const b = await startBackend()
  t.teardown(() => b.close())
  const open = await startClaylb({ args: ['--upstream', b.url], config: { listen: { processes: 1 }, log: { access: false } } })
  t.teardown(() => open.stop())
  const trusting = await startClaylb({ args: ['--upstream', b.url], config: { listen: { processes: 1 }, log: { access: false }, trustedProxies: ['127.0.0.1/32'], requestId: { header: 'X-Trace-Me' } } })
  t.teardown(() => trusting.stop())

  const ids = new Set<string>()
  const mismatched: string[] = []
  for (let i = 0; i < 50; i++) {
    const r = await req(`${open.url}/a`, { headers: { 'x-request-id': 'client-chosen' } })
    const id = String(r.headers['x-request-id'])
    if (b.seen[b.seen.length - 1]!.headers['x-request-id'] !== id) mismatched.push(id)
    ids.add(id)
  }
  t.notOk(ids.has('client-chosen'), 'an untrusted client\'s id is replaced')
  t.same(mismatched, [], 'the upstream got the id the client got')
  t.equal(ids.size, 50, 'every id differs')
  t.equal(b.seen.filter((s) => (s.rawHeaders.filter((h) => h.toLowerCase() === 'x-request-id').length !== 1)).length, 0, 'exactly one id header upstream')

  const kept = await req(`${trusting.url}/b`, { headers: { 'x-trace-me': 'from-the-edge-42' } })
  t.equal(kept.headers['x-trace-me'], 'from-the-edge-42', 'a trusted forwarder\'s id is kept (header name configured)')
  t.equal(b.seen[b.seen.length - 1]!.headers['x-trace-me'], 'from-the-edge-42')
  const junk = await req(`${trusting.url}/b`, { headers: { 'x-trace-me': 'has space' } })
  t.not(junk.headers['x-trace-me'], 'has space', 'an id that is not a clean token is replaced, trusted or not')

  const bad = await rawExchange(Number(new URL(open.url).port), 'GET / HTTP/1.1\r\nhost: a\r\nhost: b\r\n\r\n')
  t.equal(statusOf(bad), 400)
  const idLine = /\r\nx-request-id: (\S+)\r\n/.exec(bad)
  t.ok(idLine, 'a problem answer carries the id header')
  t.equal((JSON.parse(bodyOf(bad)) as { requestId: string }).requestId, idLine?.[1], 'and its body the same requestId')
})

t.test('traceparent: the trace kept, claylb\'s span sent upstream, a trace started when absent; no tracing: untouched', async (t) => {
  const b = await startBackend()
  t.teardown(() => b.close())
  const c = await startClaylb({ args: ['--upstream', b.url], config: { listen: { processes: 1 }, log: { access: false }, tracing: { sampleRatio: 0 } } })
  t.teardown(() => c.stop())
  const plain = await startClaylb({ args: ['--upstream', b.url], config: { listen: { processes: 1 }, log: { access: false } } })
  t.teardown(() => plain.stop())
  const traceId = '4bf92f3577b34da6a3ce929d0e0e4736'
  const parent = '00f067aa0ba902b7'
  const up = (): string => String(b.seen[b.seen.length - 1]!.headers['traceparent'])

  await req(`${c.url}/t`, { headers: { traceparent: `00-${traceId}-${parent}-01`, tracestate: 'vendor=x' } })
  const m = TP.exec(up())
  t.equal(m?.[1], traceId, 'same trace')
  t.not(m?.[2], parent, 'claylb\'s own span id')
  t.equal(m?.[3], '01', 'the parent\'s sampled flag kept')
  t.equal(b.seen[b.seen.length - 1]!.headers['tracestate'], 'vendor=x', 'tracestate passes')

  await req(`${c.url}/t`)
  const started = TP.exec(up())
  t.ok(started !== null && started[1] !== traceId, 'no traceparent: a new trace')
  t.equal(started?.[3], '00', 'sampleRatio 0: not sampled')
  await req(`${c.url}/t`, { headers: { traceparent: `00-${'0'.repeat(32)}-${parent}-01` } })
  t.not(TP.exec(up())?.[1], '0'.repeat(32), 'an invalid one (all-zero trace id) starts a new trace')

  await req(`${plain.url}/t`, { headers: { traceparent: `00-${traceId}-${parent}-01` } })
  t.equal(up(), `00-${traceId}-${parent}-01`, 'without tracing it is an ordinary header')
})

t.test('OTLP/HTTP export: sampled requests as SERVER spans with the HTTP semantic conventions', async (t) => {
  const b = await startBackend()
  t.teardown(() => b.close())
  const rx = await startOtlpReceiver()
  t.teardown(() => rx.close())
  const c = await startClaylb({ args: ['--upstream', b.url], config: { listen: { processes: 1 }, log: { access: false }, tracing: { sampleRatio: 1, otlp: rx.url, serviceName: 'edge' } } })
  t.teardown(() => c.stop())
  const parent = '00f067aa0ba902b7'
  const traceId = '4bf92f3577b34da6a3ce929d0e0e4736'
  const r1 = await req(`${c.url}/p?q=1`, { headers: { 'user-agent': 'ua/2', traceparent: `00-${traceId}-${parent}-01` } })
  const sentUp = TP.exec(String(b.seen[b.seen.length - 1]!.headers['traceparent']))!
  await req(`${c.url}/second`)
  // a parent that is not sampled is not exported, whatever the ratio
  await req(`${c.url}/unsampled`, { headers: { traceparent: `00-${traceId}-${parent}-00` } })
  await req(`${c.url}/third`)
  await rx.waitFor(3)
  t.equal(rx.contentTypes[0], 'application/x-protobuf')
  t.match(rx.resources[0], { 'service.name': 'edge' })
  const paths = rx.spans.map((s) => s.attrs['url.path'])
  t.notOk(paths.includes('/unsampled'), 'an unsampled parent: no span')
  const s = rx.spans.find((x) => x.attrs['url.path'] === '/p')!
  t.match(s, {
    trace_id: traceId, span_id: sentUp[2], parent_span_id: parent, name: 'GET', kind: 2, flags: 0x301,
    attrs: {
      'http.request.method': 'GET', 'url.path': '/p', 'url.query': 'q=1', 'http.response.status_code': 200, 'network.protocol.version': '1.1',
      'server.address': '127.0.0.1', 'client.address': '127.0.0.1', 'user_agent.original': 'ua/2', 'claylb.request.id': r1.headers['x-request-id'],
    },
  })
  const start = s['start_time_unix_nano'] as bigint
  const end = s['end_time_unix_nano'] as bigint
  t.ok(end >= start && Number(end - start) < 60e9, 'start and end times in ns')
  t.ok(Math.abs(Number(start / 1_000_000n) - Date.now()) < 120_000, 'wall-clock times')
  const root = rx.spans.find((x) => x.attrs['url.path'] === '/second')!
  t.notOk('parent_span_id' in root, 'a trace started here has no parent')
  t.equal(root['flags'], 0x101)
})
