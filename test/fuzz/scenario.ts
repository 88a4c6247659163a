/**
 * What the differential fuzzer generates (fast-check arbitraries) and how a generated scenario
 * becomes bytes. A scenario is client connections run one after another through one claylb; each
 * request carries the upstream's answer script. Ids are not generated: the runner numbers every
 * request from a counter that never repeats for the life of the file, and every value a request or
 * its answer carries is marked `~id~`, so a byte of one message found in another names its source.
 */
import fc from 'fast-check'
import { chunked, fieldLines, type Fields } from './wire.js'

export interface BodySpec {
  kind: 'none' | 'length' | 'chunked'
  data: string
  /** chunk size the client writes */
  chunk: number
  trailers: Fields
}

export interface AnswerSpec {
  /** interim answers before the final one (100, 102, 103, 199) */
  interim: Array<{ status: number, headers: Fields }>
  status: number
  reason: string
  headers: Fields
  /** `connection: x-hop` and an `x-hop` header the proxy must drop */
  connectionList: boolean
  framing: 'length' | 'chunked' | 'close'
  body: string
  chunk: number
  trailers: Fields
  /** answered as soon as the request head arrived, before its body was read */
  early: boolean
  /** the first delivery of the request is answered with a TCP RST (after it was read whole) */
  reset: boolean
}

export interface RequestSpec {
  method: string
  /** the path after /fz/~id~/ */
  seg: string
  headers: Fields
  /** `Connection: x-drop` and an `x-drop` header the proxy must drop */
  connectionList: boolean
  body: BodySpec
  expect: boolean
  /** HTTP/1.0: `Connection: keep-alive` */
  keepAlive: boolean
  /** HTTP/1.0: send a Host (always sent on 1.1) */
  host: boolean
  /** sequential connections only: the client hangs up (FIN or RST) right after sending it */
  abort: 'none' | 'fin' | 'rst'
  answer: AnswerSpec
}

export type Version = '1.0' | '1.1' | '2'

export interface ConnSpec {
  /** '2': an HTTP/2 session; `pipelined`: its streams all at once */
  version: Version
  /** every request written at once (else one at a time, each after the answer before it) */
  pipelined: boolean
  reqs: RequestSpec[]
  /** a plain GET after the others (test/fuzz/run PROBE): bytes left over before its answer are a desync */
  probe: boolean
}

export interface Scenario {
  conns: ConnSpec[]
}

export const HOST = 'fz.test'
export const marker = (id: number): string => `~${id}~`

/** every `~id~` in a text */
export function markersIn (text: string): number[] {
  return [...text.matchAll(/~(\d+)~/g)].map((m) => Number(m[1]))
}

/** the id a request target names (its first marker) */
export function idOf (target: string): number | undefined {
  const m = /^\/fz\/~(\d+)~\//.exec(target)
  return m === null ? undefined : Number(m[1])
}

// ---- arbitraries ----

const word = fc.constantFrom('a', 'ok', 'v1', 'x y', 'A-Z', '')
const fields = (names: string[], max: number): fc.Arbitrary<Fields> =>
  fc.array(fc.tuple(fc.constantFrom(...names), word), { maxLength: max })

/**
 * What a run may leave out (FUZZ_EXCLUDE, comma-separated): the features whose fixed behaviour is still
 * being decided or repaired elsewhere, so that on code without those fixes the fuzzer can still look for
 * everything else (their failures would otherwise be the smallest counterexample every time).
 */
export const FEATURES = ['underscore', 'interim', 'invalid-status', 'lower-method', 'reset', 'no-content', 'early', 'abort', 'expect', 'request-trailers', 'response-trailers', 'extension-method'] as const
export type Feature = typeof FEATURES[number]

const TRAILER_NAMES = ['x-trailer', 'Set-Cookie', 'server-timing']
const sometimes = <T>(on: boolean, rare: fc.Arbitrary<T>, usual: T, odds = 9): fc.Arbitrary<T> =>
  on ? fc.oneof({ weight: odds, arbitrary: fc.constant(usual) }, { weight: 1, arbitrary: rare }) : fc.constant(usual)

/** The scenarios, without the features in `exclude`. */
export function scenarioArb (exclude: ReadonlySet<Feature> = new Set()): fc.Arbitrary<Scenario> {
  const has = (f: Feature): boolean => !exclude.has(f)
  const under = has('underscore') ? ['x_under'] : []
  // request header names: end-to-end ones, one with `_`, hop-by-hop ones and spoofed forwarding headers
  const requestNames = ['accept', 'X-Mixed-Case', 'x-a', 'cookie', ...under, 'keep-alive', 'te', 'proxy-authorization', 'x-forwarded-for', 'X-Forwarded-Host', 'forwarded']
  const responseNames = ['x-r', 'Set-Cookie', 'cache-control', 'keep-alive', 'X-Mixed', 'proxy-authenticate', ...under, 'trailer']
  const statuses: Array<fc.WeightedArbitrary<number>> = [{ weight: 12, arbitrary: fc.constantFrom(200, 201, 404, 500, 503) }]
  if (has('no-content')) statuses.push({ weight: 2, arbitrary: fc.constantFrom(204, 304) })
  // invalid or unrequested: each must become a 502 problem
  if (has('invalid-status')) statuses.push({ weight: 1, arbitrary: fc.constantFrom(99, 600, 101) })
  const methods: Array<fc.WeightedArbitrary<string>> = [{ weight: 10, arbitrary: fc.constantFrom('GET', 'POST', 'PUT', 'HEAD', 'DELETE', 'PATCH', 'OPTIONS') }]
  // an extension method: forwarded as any token
  if (has('extension-method')) methods.push({ weight: 1, arbitrary: fc.constant('FOO') })
  // a lower-case one: refused (methods are case-sensitive)
  if (has('lower-method')) methods.push({ weight: 1, arbitrary: fc.constant('post') })
  const answer: fc.Arbitrary<AnswerSpec> = fc.record({
    interim: has('interim') ? fc.array(fc.record({ status: fc.constantFrom(100, 102, 103, 199), headers: fields(['link', 'x-i'], 1) }), { maxLength: 2 }) : fc.constant([]),
    status: fc.oneof(...statuses),
    reason: fc.constantFrom('OK', 'Fine Thanks', ''),
    headers: fields(responseNames, 3),
    connectionList: fc.boolean(),
    framing: fc.constantFrom<AnswerSpec['framing']>('length', 'chunked', 'close'),
    body: fc.constantFrom('', 'r', 'answer', 'y'.repeat(500)),
    chunk: fc.constantFrom(1, 7, 1000),
    trailers: has('response-trailers') ? fields(TRAILER_NAMES, 2) : fc.constant([]),
    early: sometimes(has('early'), fc.constant(true), false, 4),
    reset: sometimes(has('reset'), fc.constant(true), false),
  })
  const request: fc.Arbitrary<RequestSpec> = fc.record({
    method: fc.oneof(...methods),
    seg: fc.constantFrom('', 'a', 'b/c', 'q?x=1&y=~'),
    headers: fields(requestNames, 4),
    connectionList: fc.boolean(),
    body: fc.record({
      kind: fc.constantFrom<BodySpec['kind']>('none', 'length', 'chunked'),
      data: fc.constantFrom('', 'b', 'hello', 'x'.repeat(300)),
      chunk: fc.constantFrom(1, 4, 1000),
      trailers: has('request-trailers') ? fields(TRAILER_NAMES, 2) : fc.constant([]),
    }),
    expect: has('expect') ? fc.boolean() : fc.constant(false),
    keepAlive: fc.boolean(),
    host: fc.boolean(),
    abort: sometimes<RequestSpec['abort']>(has('abort'), fc.constantFrom<'fin' | 'rst'>('fin', 'rst'), 'none', 15),
    answer,
  })
  return fc.record({
    conns: fc.array(fc.record({
      version: fc.oneof({ weight: 4, arbitrary: fc.constant<Version>('1.1') }, { weight: 1, arbitrary: fc.constant<Version>('1.0') }, { weight: 2, arbitrary: fc.constant<Version>('2') }),
      pipelined: fc.boolean(),
      reqs: fc.array(request, { minLength: 1, maxLength: 4 }),
      // without one, what the connection's last answer left behind in a pooled upstream connection meets the next client
      probe: fc.oneof({ weight: 3, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
    }), { minLength: 1, maxLength: 3 }),
  })
}

/** A plain request (GET, no body, answered 200 with a length) with `o` over it: for hand-written scenarios. */
export function requestSpec (o: Partial<Omit<RequestSpec, 'answer' | 'body'>> & { body?: Partial<BodySpec>, answer?: Partial<AnswerSpec> } = {}): RequestSpec {
  return {
    method: 'GET', seg: '', headers: [], connectionList: false, expect: false, keepAlive: true, host: true, abort: 'none',
    ...o,
    body: { kind: 'none', data: '', chunk: 1000, trailers: [], ...o.body },
    answer: { interim: [], status: 200, reason: 'OK', headers: [], connectionList: false, framing: 'length', body: '', chunk: 1000, trailers: [], early: false, reset: false, ...o.answer },
  }
}

// ---- HTTP/2 ----

/** names node:http2 refuses to send (RFC 9113 §8.2.2 connection-specific fields; Host is :authority) */
const H2_UNSENDABLE = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'host'])

/** fields as HTTP/2 carries them: names lower-case, a repeated name's values together where it first appeared */
export function h2Grouped (fields: Fields): Fields {
  const order: string[] = []
  const values = new Map<string, string[]>()
  for (const [n, v] of fields) {
    const lower = n.toLowerCase()
    if (!values.has(lower)) { order.push(lower); values.set(lower, []) }
    values.get(lower)!.push(v)
  }
  return order.flatMap((n) => values.get(n)!.map((v): [string, string] => [n, v]))
}

/** Request `id` as an HTTP/2 stream: pseudo-headers, fields, body (a length declared for 'length' bodies), trailers. */
export function h2Request (r: RequestSpec, id: number): { pseudo: Record<string, string>, fields: Fields, body: string, trailers: Fields } {
  const b = effectiveBody(r, '2')
  // node:http2 sends `proxy-authorization` once at most (one of its single-value names)
  const sendable = mark(r.headers, id).filter(([n], i, all) => !H2_UNSENDABLE.has(n.toLowerCase()) &&
    (n.toLowerCase() !== 'proxy-authorization' || all.findIndex(([m]) => m.toLowerCase() === 'proxy-authorization') === i))
  const fields = h2Grouped(sendable)
  const body = bodyData(b, id)
  if (b.kind === 'length') fields.push(['content-length', String(body.length)])
  return {
    pseudo: { ':method': r.method, ':path': targetOf(r, id), ':authority': HOST, ':scheme': 'https' },
    fields,
    body,
    trailers: b.kind === 'chunked' ? mark(b.trailers, id) : [],
  }
}

// ---- bytes ----

/** The body a request really has: HTTP/1.0 clients do not chunk, bodies go with the methods that carry one. */
export function effectiveBody (r: RequestSpec, version: Version): BodySpec {
  const carries = r.method === 'POST' || r.method === 'PUT' || r.method === 'PATCH' || r.method === 'FOO' || r.method === 'post'
  if (!carries || r.body.kind === 'none') return { kind: 'none', data: '', chunk: 1, trailers: [] }
  if (version === '1.0' && r.body.kind === 'chunked') return { ...r.body, kind: 'length' }
  return r.body
}

export const mark = (fields: Fields, id: number): Fields => fields.map(([n, v]) => [n, `${v}${marker(id)}`])

/** The fields the client sends for request `id`, framing included, in the order it writes them. */
export function requestFields (r: RequestSpec, id: number, version: Version): Fields {
  const out: Fields = []
  if (version === '1.1' || r.host) out.push(['Host', HOST])
  out.push(...mark(r.headers, id))
  const connection: string[] = []
  if (version === '1.0' && r.keepAlive) connection.push('keep-alive')
  if (r.connectionList) {
    connection.push('x-drop')
    out.push(['x-drop', `d${marker(id)}`])
  }
  if (connection.length > 0) out.push(['Connection', connection.join(', ')])
  const b = effectiveBody(r, version)
  if (b.kind === 'length') out.push(['Content-Length', String(bodyData(b, id).length)])
  if (b.kind === 'chunked') out.push(['Transfer-Encoding', 'chunked'])
  if (r.expect && b.kind !== 'none') out.push(['Expect', '100-continue'])
  return out
}

export const targetOf = (r: RequestSpec, id: number): string => `/fz/${marker(id)}/${r.seg}`

/** The client's head (request line to the blank line) and body bytes for request `id`. */
export function requestBytes (r: RequestSpec, id: number, version: Version): { head: string, body: string } {
  const b = effectiveBody(r, version)
  const data = bodyData(b, id)
  const head = `${r.method} ${targetOf(r, id)} HTTP/${version}\r\n${fieldLines(requestFields(r, id, version))}\r\n`
  const body = b.kind === 'chunked' ? chunked(data, b.chunk, mark(b.trailers, id)) : data
  return { head, body }
}

/** the body's payload, marked (empty when there is none) */
export function bodyData (b: BodySpec, id: number): string {
  return b.kind === 'none' ? '' : `${b.data}${marker(id)}`
}

/** the answer's payload, marked */
export const answerData = (a: AnswerSpec, id: number): string => `${a.body}${marker(id)}`

/** How the upstream writes answer `a` to request `id` (`head`: the request was HEAD, so no body follows). */
export function answerBytes (a: AnswerSpec, id: number, head: boolean): { bytes: string, close: boolean } {
  let s = ''
  for (const i of a.interim) s += `HTTP/1.1 ${i.status} Interim\r\n${fieldLines(mark(i.headers, id))}\r\n`
  const status = String(a.status).padStart(3, '0')
  if (a.status === 101) return { bytes: `${s}HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: fz\r\n\r\n`, close: true }
  const fieldsOut = mark(a.headers, id)
  if (a.connectionList) fieldsOut.push(['connection', 'x-hop'], ['x-hop', `h${marker(id)}`])
  const noBody = head || a.status === 204 || a.status === 304
  const data = noBody ? '' : answerData(a, id)
  let body = data
  const close = a.framing === 'close' && a.status !== 204 && a.status !== 304
  if (a.status === 304) {
    // no framing header: the status says there is no body
  } else if (a.status === 204) {
    // `content-length: 0` on a 204, as many servers send it (RFC 9110 §8.6 says they must not)
    if (a.framing === 'length') fieldsOut.push(['content-length', '0'])
  } else if (a.framing === 'length') fieldsOut.push(['content-length', String(head ? answerData(a, id).length : data.length)])
  else if (a.framing === 'chunked') {
    fieldsOut.push(['transfer-encoding', 'chunked'])
    if (!head) body = chunked(data, a.chunk, mark(a.trailers, id))
  } else fieldsOut.push(['connection', 'close'])
  return { bytes: `${s}HTTP/1.1 ${status} ${a.reason}\r\n${fieldLines(fieldsOut)}\r\n${body}`, close }
}

/** A scenario as compact JSON (a run of one character as `y×500`), for failure reports. */
export function describe (s: Scenario | undefined): string {
  return JSON.stringify(s, (_k, v: unknown) => typeof v === 'string' && v.length > 12 && /^(.)\1+$/.test(v) ? `${v[0]}×${v.length}` : v)
}
