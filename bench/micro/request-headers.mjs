// Request header pass: claylb's upstreamRequestHeaders (raw array in, raw array out, dist/proxy/headers.js)
// beside the naive way: build a lower-cased header object, delete hop-by-hop and Connection-listed
// names, set the x-forwarded-* fields (what http-proxy-style code does).
import { BROWSER_HEADERS, bench, do_not_optimize, reportAllocations, requireDist, run, summary } from './harness.mjs'

const { upstreamRequestHeaders } = await requireDist('proxy/headers.js')

const RAW = BROWSER_HEADERS
const HOP = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'expect', 'proxy-authorization', 'proxy-authenticate', 'http2-settings']

function naive (raw, clientIp, proto) {
  const h = {}
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i].toLowerCase()
    h[k] = h[k] === undefined ? raw[i + 1] : `${h[k]}, ${raw[i + 1]}`
  }
  if (h.connection) for (const t of h.connection.split(',')) delete h[t.trim().toLowerCase()]
  for (const k of HOP) delete h[k]
  h['x-forwarded-for'] = h['x-forwarded-for'] ? `${h['x-forwarded-for']}, ${clientIp}` : clientIp
  h['x-forwarded-proto'] = proto
  if (h.host) h['x-forwarded-host'] = h.host
  return h
}

summary(() => {
  bench('claylb upstreamRequestHeaders (10 headers)', () => do_not_optimize(upstreamRequestHeaders(RAW, '127.0.0.1', 'http')))
  bench('naive: header object, delete, set', () => do_not_optimize(naive(RAW, '127.0.0.1', 'http')))
})
await run()
await reportAllocations([
  ['claylb upstreamRequestHeaders', () => upstreamRequestHeaders(RAW, '127.0.0.1', 'http'), 1e5],
  ['naive header object', () => naive(RAW, '127.0.0.1', 'http'), 1e5],
])
