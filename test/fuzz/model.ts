/**
 * THE model of what claylb may change in a message, in one place: pure functions from what a client
 * sent (and the script the upstream answers with) to what the upstream must receive and what the
 * client must get back. Each rule names the README line it encodes; rules marked ASSUMPTION encode
 * the fixed behaviour decided for defects being repaired on other branches (see the fuzzer's report),
 * to be aligned with the README when those land.
 */
import type { Fields } from './wire.js'
import { answerData, bodyData, effectiveBody, h2Grouped, h2Request, mark, requestFields, targetOf } from './bytes.js'
import { HOST, marker, type AnswerSpec, type RequestSpec, type Version } from './scenario.js'

/**
 * README "What the proxy does to a request": "removes hop-by-hop headers (RFC 9110 §7.6.1) and every
 * header named in `Connection`, in both directions". The set is src/data/http/headers.ts HOP_BY_HOP,
 * written out again here on purpose: the model must not import what it checks.
 */
export const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade',
  'expect', 'proxy-authorization', 'proxy-authenticate', 'http2-settings'])

/** README: x-forwarded-for / -proto / -host are the proxy's own from an untrusted peer; `via: 1.1 claylb` added */
export const PROXY_ADDED = ['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'via']

/** names listed in Connection values (README: those are removed too; Host and Content-Length never are) */
function connectionListed (fields: Fields): Set<string> {
  const out = new Set<string>()
  for (const [n, v] of fields) {
    if (n.toLowerCase() !== 'connection') continue
    for (const t of v.split(',')) {
      const name = t.trim().toLowerCase()
      if (name !== '' && name !== 'close' && name !== 'keep-alive' && name !== 'host' && name !== 'content-length') out.add(name)
    }
  }
  return out
}

/** hop-by-hop and Connection-listed fields removed, the rest in order, names as sent */
export function endToEnd (fields: Fields): Fields {
  const listed = connectionListed(fields)
  return fields.filter(([n]) => !HOP_BY_HOP.has(n.toLowerCase()) && !listed.has(n.toLowerCase()))
}

/** What the upstream must receive for one client request. */
export interface ForwardedRequest {
  method: string
  target: string
  /** the client's end-to-end fields in order, Host and the proxy's own excluded */
  fields: Fields
  /** the one Host the upstream gets */
  host: string
  /** each exactly once */
  added: Record<string, string>
  chunked: boolean
  body: string
}

export interface Peer {
  /** the client's address as claylb sees it */
  clientIp: string
  /** x-forwarded-proto */
  proto: 'http' | 'https'
  /** the upstream's host:port (the Host claylb sends when an HTTP/1.0 client sent none) */
  authority: string
}

/** The client's request as it must reach the upstream (undefined: claylb must refuse it itself). */
export function forwardedRequest (r: RequestSpec, id: number, version: Version, peer: Peer): ForwardedRequest | undefined {
  // ASSUMPTION (being fixed): methods are case-sensitive (RFC 9110 §9.1); a lower-case `post` is refused with 400
  if (r.method !== r.method.toUpperCase()) return undefined
  const sent = version === '2' ? h2Request(r, id).fields : requestFields(r, id, version)
  let fields = endToEnd(sent).filter(([n]) => {
    const lower = n.toLowerCase()
    if (lower === 'host') return false
    // README: a client's x-forwarded-* are replaced by the proxy's own (no trustedProxies here)
    if (lower.startsWith('x-forwarded-')) return false
    // ASSUMPTION (being fixed): header names with `_` are dropped (nginx's underscores_in_headers off)
    if (lower.includes('_')) return false
    return true
  })
  if (version === '2') {
    // README "TLS, SNI and HTTP/2": every stream goes through the same engine as an HTTP/1.1 request;
    // src/data/engine/h2.ts: :authority becomes Host, cookie fields are joined into one, last (RFC 9113 §8.2.3)
    const cookies = fields.filter(([n]) => n === 'cookie').map(([, v]) => v)
    fields = fields.filter(([n]) => n !== 'cookie')
    if (cookies.length > 0) fields.push(['cookie', cookies.join('; ')])
  }
  const hostSent = version !== '1.0' || r.host
  const added: Record<string, string> = {
    'x-forwarded-for': peer.clientIp,
    'x-forwarded-proto': peer.proto,
    via: '1.1 claylb',
  }
  if (hostSent) added['x-forwarded-host'] = HOST
  const b = effectiveBody(r, version)
  return {
    method: r.method,
    target: targetOf(r, id),
    fields,
    // README: keeps `Host` as it came; an HTTP/1.0 request without one gets the upstream's authority
    host: hostSent ? HOST : peer.authority,
    added,
    // README: the body is streamed; its framing is the client's (chunked stays chunked; trailers are not
    // forwarded); an HTTP/2 body without a declared length goes chunked (src/data/engine/h2.ts)
    chunked: b.kind === 'chunked',
    body: bodyData(b, id),
  }
}

/** One answer the client may get. */
export type ExpectedAnswer =
  | { kind: 'problem', status: number, type: string }
  | {
    kind: 'answer'
    /** interim answers (besides 100 Continue, which claylb may also make itself) */
    interim: Array<{ status: number, fields: Fields }>
    status: number
    reason: string
    /** end-to-end fields in order, framing (content-length, transfer-encoding) and connection excluded */
    fields: Fields
    body: string
    /** HEAD, 204 or 304: no body */
    noBody: boolean
    /** the upstream's declared length, which a 304 or an answer to HEAD passes on */
    declaredLength: string | undefined
  }

/** What the client may get for one request and how often the upstream may see it. */
export interface Expectation {
  /** any one of these (a reset idempotent request: the 502, or the answer to its retry) */
  options: Array<{ answer: ExpectedAnswer, deliveries: number }>
  /** the request may reach the upstream this many times at least (an early answer may cut its body) */
  minDeliveries: number
  /** claylb may close the connection after this answer (it must say `connection: close`) */
  mayClose: boolean
}

const problem = (status: number, type: string): ExpectedAnswer => ({ kind: 'problem', status, type: `urn:claylb:problem:${type}` })

/** The answer to `r` for a client speaking `version`, given the upstream's script. */
export function expectedAnswer (r: RequestSpec, id: number, version: Version): Expectation {
  if (r.method !== r.method.toUpperCase()) return { options: [{ answer: problem(400, 'bad-request'), deliveries: 0 }], minDeliveries: 0, mayClose: true }
  const a = r.answer
  const normal = upstreamAnswer(a, id, version, r.method === 'HEAD')
  // README "What the proxy does": an HTTP/1.0 client's connection ends after its answer unless it asked
  // for keep-alive; an answer of unknown length ends it too (a 1.0 client cannot be sent chunks)
  const closes10 = version === '1.0' && (!r.keepAlive || (normal.kind === 'answer' && !normal.noBody && a.framing !== 'length'))
  if (a.reset) {
    // README "Retries": a reset before any answer byte is retried for idempotent methods;
    // ASSUMPTION (being fixed): a POST (any non-idempotent method) is never sent again after a reset
    const idempotent = ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE'].includes(r.method)
    const options = [{ answer: problem(502, 'upstream-failed'), deliveries: 1 }]
    if (idempotent) options.push({ answer: normal, deliveries: 2 })
    return { options, minDeliveries: 1, mayClose: true }
  }
  return {
    options: [{ answer: normal, deliveries: 1 }],
    // an early answer: claylb may cut the upstream connection before the body went whole
    minDeliveries: a.early ? 0 : 1,
    // an early answer before the body was all in: "the rest of it cannot be read as a next request"
    mayClose: a.early || closes10 || normal.kind === 'problem',
  }
}

/** The upstream's answer as the client must get it. */
function upstreamAnswer (a: AnswerSpec, id: number, version: Version, head: boolean): ExpectedAnswer {
  // README: "the upstream ... broke the answer" → 502; ASSUMPTION (being fixed): a status outside
  // 100–599 (099, 600) and an unrequested 101 are broken answers
  if (a.status < 100 || a.status > 599 || a.status === 101) return problem(502, 'upstream-failed')
  const fields = mark(a.headers, id)
  if (a.connectionList) fields.push(['connection', 'x-hop'], ['x-hop', `h${marker(id)}`])
  const noBody = head || a.status === 204 || a.status === 304
  const e2e = endToEnd(fields).filter(([n]) => !['content-length', 'transfer-encoding'].includes(n.toLowerCase()))
  return {
    kind: 'answer',
    // ASSUMPTION (being fixed): every 1xx but 101 is forwarded to an HTTP/1.1 client (README today:
    // 103 only), with the hop-by-hop rule; never to an HTTP/1.0 client (RFC 9110 §15.2)
    // HTTP/2: interim answers are not modelled (src/data/engine/h2.ts forwards 100 and 103 only; see the report)
    interim: version !== '1.1' ? [] : a.interim.filter((i) => i.status !== 100).map((i) => ({ status: i.status, fields: endToEnd(mark(i.headers, id)) })),
    status: a.status,
    // HTTP/2 has no reason phrase; its fields are lower-case, a repeated name's values together
    reason: version === '2' ? '' : a.reason,
    fields: version === '2' ? h2Grouped(e2e) : e2e,
    body: noBody ? '' : answerData(a, id),
    noBody,
    declaredLength: head && a.framing === 'length' && a.status !== 204 && a.status !== 304 ? String(answerData(a, id).length) : undefined,
  }
}
