/**
 * How a scenario's messages are written: a client's request as HTTP/1.x bytes or as an HTTP/2
 * stream, and the upstream's answer as bytes, each value marked with its request's id.
 */
import { HOST, marker, type AnswerSpec, type BodySpec, type RequestSpec, type Version } from './scenario.js'
import { chunked, fieldLines, type Fields } from './wire.js'

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
