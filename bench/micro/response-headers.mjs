// Response header pass: claylb's downstreamResponseHeaders (undici's raw Buffer pairs → flat list for
// res.writeHead, dist/proxy/headers.js) beside the naive way: decode into a header object (what
// undici's stream/request API hands you), delete hop-by-hop names, pass the object to writeHead.
import { bench, do_not_optimize, reportAllocations, requireDist, run, summary } from './harness.mjs'

const { downstreamResponseHeaders } = await requireDist('proxy/headers.js')

const RAW = [
  'Content-Type', 'application/json; charset=utf-8',
  'Content-Length', '1234',
  'Date', 'Tue, 24 Nov 2026 17:00:00 GMT',
  'Connection', 'keep-alive',
  'Keep-Alive', 'timeout=5',
  'ETag', 'W/"4d2-abc"',
  'Cache-Control', 'no-store',
  'Vary', 'Accept-Encoding',
  'X-Request-Id', '4b9f7c1e-2f8a-4d9b-9a61-1c2d3e4f5a6b',
].map((s) => Buffer.from(s, 'latin1'))
const HOP = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-authenticate']

function naive (raw) {
  const h = {}
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i].toString('latin1').toLowerCase()
    const v = raw[i + 1].toString('latin1')
    const prev = h[k]
    h[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v]
  }
  if (typeof h.connection === 'string') for (const t of h.connection.split(',')) delete h[t.trim().toLowerCase()]
  for (const k of HOP) delete h[k]
  return h
}

const NO_CONNECTION = RAW.slice(0, 6).concat(RAW.slice(10))

// where the time goes: turning undici's Buffers into strings
function decodeToString (raw) { const out = new Array(raw.length); for (let i = 0; i < raw.length; i++) out[i] = raw[i].toString('latin1'); return out }
function decodeLatin1Slice (raw) { const out = new Array(raw.length); for (let i = 0; i < raw.length; i++) out[i] = raw[i].latin1Slice(0, raw[i].length); return out }

summary(() => {
  bench('claylb downstreamResponseHeaders (9 headers)', () => do_not_optimize(downstreamResponseHeaders(RAW)))
  bench('claylb downstreamResponseHeaders, no Connection', () => do_not_optimize(downstreamResponseHeaders(NO_CONNECTION)))
  bench('naive: decode to object, delete hop-by-hop', () => do_not_optimize(naive(RAW)))
  bench('decode only: 18 × buf.toString(\'latin1\')', () => do_not_optimize(decodeToString(RAW)))
  bench('decode only: 18 × buf.latin1Slice()', () => do_not_optimize(decodeLatin1Slice(RAW)))
})
await run()
await reportAllocations([
  ['claylb downstreamResponseHeaders', () => downstreamResponseHeaders(RAW), 1e5],
  ['naive header object', () => naive(RAW), 1e5],
])
