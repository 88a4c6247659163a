// The raw engine's head work per request (dist/engine/): llhttp parsing a request head and an answer
// head (Node's own parser, what the engine feeds from the socket), and the two re-serialisations as
// one latin1 string each (engine/head.js), beside header-array passes (what node:http and undici
// need, and what the removed node engine built per request): an array request pass written here, and
// the engine's own `responseHeaderList` (the array the idempotency record takes, keyed routes only).
import { BROWSER_HEADERS, bench, do_not_optimize, reportAllocations, requireDist, run, summary } from './harness.mjs'

const { requestHead, responseHead, responseHeaderList } = await requireDist('engine/head.js')
const { createParser } = await requireDist('engine/llhttp.js')
const { HOP_BY_HOP } = await requireDist('proxy/headers.js')

const RAW = BROWSER_HEADERS
const REQ = Buffer.from(`GET /orders/17?expand=lines HTTP/1.1\r\n${pairs(RAW)}\r\n`, 'latin1')
// a typical Node/Express answer head
const RESP_RAW = ['X-Powered-By', 'Express', 'Content-Type', 'application/json; charset=utf-8', 'Content-Length', '17',
  'ETag', 'W/"11-abc"', 'Date', 'Mon, 30 Nov 2026 00:00:00 GMT', 'Connection', 'keep-alive', 'Keep-Alive', 'timeout=5']
const RESP = Buffer.from(`HTTP/1.1 200 OK\r\n${pairs(RESP_RAW)}\r\n{"ok":true,"n":17}`, 'latin1')

function pairs (raw) {
  let s = ''
  for (let i = 0; i < raw.length; i += 2) s += `${raw[i]}: ${raw[i + 1]}\r\n`
  return s
}

// the facts object is the exchange in the engine; one reused here, as the fields of one exchange
const facts = { headLines: '', hostHeader: '', hostCount: 0, contentLength: -1, chunkedIn: false, otherCoding: false, expectContinue: false, badExpect: '', maxForwards: -1, upgradeTo: '', respLines: '', respLength: -1, respChunked: false }
function engineRequest () {
  requestHead(facts, RAW, '127.0.0.1', 'http', 'GET')
  return `GET /orders/17?expand=lines HTTP/1.1\r\n${facts.headLines}\r\n`
}
function engineResponse () {
  responseHead(facts, RESP_RAW)
  return `HTTP/1.1 200 OK\r\n${facts.respLines}\r\n`
}

const sink = { onHeaders () {}, onHeadersComplete () { return 0 }, onBody () {}, onMessageComplete () {}, onExecute () {} }
const reqParser = createParser('request', 16384, sink)
const resParser = createParser('response', 16384, sink)

// the array baseline: the same rules, a header array per request (no Connection-listed names here)
function arrayRequest (raw, ip) {
  const out = []
  let xff
  for (let i = 0; i < raw.length; i += 2) {
    const lower = raw[i].toLowerCase()
    if (HOP_BY_HOP.has(lower) || lower === 'x-forwarded-proto' || lower === 'x-forwarded-host') continue
    if (lower === 'x-forwarded-for') { xff = raw[i + 1]; continue }
    out.push(raw[i], raw[i + 1])
  }
  out.push('x-forwarded-for', xff === undefined ? ip : `${xff}, ${ip}`, 'x-forwarded-proto', 'http')
  return out
}

// naive JS parse: what a hand-written head parser starts from
function naiveParse (buf) {
  const text = buf.toString('latin1')
  const end = text.indexOf('\r\n\r\n')
  const lines = text.slice(0, end).split('\r\n')
  const h = []
  for (let i = 1; i < lines.length; i++) {
    const c = lines[i].indexOf(':')
    h.push(lines[i].slice(0, c), lines[i].slice(c + 1).trim())
  }
  return h
}

summary(() => {
  bench('engine: llhttp parse of a request head (10 headers)', () => do_not_optimize(reqParser.execute(REQ)))
  bench('naive JS head parse (toString, split)', () => do_not_optimize(naiveParse(REQ)))
})
summary(() => {
  bench('engine: request head → one latin1 string', () => do_not_optimize(engineRequest()))
  bench('array baseline: request headers → array', () => do_not_optimize(arrayRequest(RAW, '127.0.0.1')))
})
summary(() => {
  bench('engine: llhttp parse of an answer head + 17 B body', () => do_not_optimize(resParser.execute(RESP)))
  bench('engine: answer head → one latin1 string', () => do_not_optimize(engineResponse()))
  bench('array baseline: responseHeaderList → array', () => do_not_optimize(responseHeaderList(RESP_RAW)))
})
await run()
await reportAllocations([
  ['llhttp parse, request head', () => reqParser.execute(REQ), 1e6],
  ['naive JS head parse', () => naiveParse(REQ), 1e5],
  ['engine request head string', engineRequest, 1e6],
  ['array baseline, request headers', () => arrayRequest(RAW, '127.0.0.1'), 1e5],
  ['llhttp parse, answer head + body', () => resParser.execute(RESP), 1e6],
  ['engine answer head string', engineResponse, 1e6],
  ['array baseline, responseHeaderList', () => responseHeaderList(RESP_RAW), 1e5],
])
