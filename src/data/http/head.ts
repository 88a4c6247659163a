/**
 * @module engine/head
 * Heads re-serialised as one latin1 string, in one pass over llhttp's raw [name, value, …] list: the
 * header rules of proxy/headers.ts (hop-by-hop and Connection-listed names dropped, X-Forwarded-*
 * set, Via added) without building a header array or object. What a pass learns about framing is
 * written into the fields of the object it is given (the exchange), so a request allocates only
 * the head string itself.
 */
import { addConnectionTokens, HOP_BY_HOP } from './headers.js'
import type { HeaderRewrite } from '../../shared/config/header-rewrite.js'
import { keepableId, newRequestId } from '../observe/request-id.js'
import type { TraceFacts, Tracer } from '../observe/trace.js'

/** request ids and trace context (requestId, tracing): null when neither is configured */
export interface HeadObserve {
  /** the request id header's lower-case name; '' when request ids are off */
  readonly idHeader: string
  readonly tracer: Tracer | null
}

/** What the request pass reports (the exchange implements it). */
export interface RequestHeadFacts {
  /** the header lines for the upstream, each ending in CRLF, without the request line and the final CRLF */
  headLines: string
  /** the client's header lines as HTTP/1.1 writes them (`name: value` CRLF each), in bytes */
  headBytes: number
  /** the client's Host ('' when absent) */
  hostHeader: string
  hostCount: number
  /** declared Content-Length, -1 when absent */
  contentLength: number
  chunkedIn: boolean
  /** Transfer-Encoding other than chunked alone */
  otherCoding: boolean
  /** Expect: 100-continue; `badExpect`: any other expectation */
  expectContinue: boolean
  badExpect: string
  /** Max-Forwards value, -1 when absent or not OPTIONS/TRACE */
  maxForwards: number
  /** the Upgrade value the client offered ('' for none) */
  upgradeTo: string
  /** the request id ('' when request ids are off): a trusted forwarder's, else made here */
  requestId: string
}

const VIA = 'via: 1.1 claylb\r\n'

/**
 * Request pass. Order matters as in proxy/headers.ts: names are dropped first, then the proxy's own
 * are added, so `Connection: x-forwarded-for` cannot remove what the proxy adds.
 * `trusted`: the peer is a trusted forwarder, its x-forwarded-for (with the peer appended) / -proto /
 * -host are kept; from any other peer all three are the proxy's own (x-forwarded-for: the peer). `rewrite`: the route's request headers; its names are dropped,
 * the proxy's own included, and its set lines come last.
 */
export function requestHead (f: RequestHeadFacts, raw: readonly string[], clientIp: string, proto: string, method: string,
  trusted = false, rewrite: HeaderRewrite | null = null, obs: HeadObserve | null = null): void {
  let out = ''
  let listed: Set<string> | null = null
  let xff: string | undefined
  let xfProto = ''
  let xfHost = ''
  let host = ''
  let hostCount = 0
  let contentLength = -1
  let chunked = false
  let otherCoding = false
  let expectContinue = false
  let badExpect = ''
  let maxForwards = -1
  let upgradeTo = ''
  let bytes = 0
  let rid = ''
  let traceparent = ''
  const idHeader = obs === null ? '' : obs.idHeader
  const tracing = obs !== null && obs.tracer !== null
  const mfMethod = method === 'OPTIONS' || method === 'TRACE'
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!
    const value = raw[i + 1]!
    bytes += name.length + value.length + 4
    const lower = name.toLowerCase()
    if (HOP_BY_HOP.has(lower)) {
      if (lower === 'transfer-encoding') {
        chunked = true
        if (value.trim().toLowerCase() !== 'chunked') otherCoding = true
      } else if (lower === 'connection') listed = addConnectionTokens(value, listed)
      else if (lower === 'expect') {
        if (value.trim().toLowerCase() === '100-continue') expectContinue = true
        else badExpect = value
      } else if (lower === 'upgrade') upgradeTo = value
      continue
    }
    if (obs !== null) {
      // a client's own id is its say-so: kept from a trusted forwarder only, replaced otherwise
      if (lower === idHeader) {
        if (trusted && rid === '' && keepableId(value)) rid = value
        continue
      }
      if (tracing && lower === 'traceparent') {
        if (traceparent === '') traceparent = value
        continue
      }
    }
    switch (lower) {
      case 'x-forwarded-for':
        // an untrusted client's hops are its own say-so: a backend reading the first hop would be fooled
        if (trusted) xff = xff === undefined ? value : `${xff}, ${value}`
        continue
      case 'x-forwarded-proto':
        if (trusted) xfProto = xfProto === '' ? value : `${xfProto}, ${value}`
        continue
      case 'x-forwarded-host':
        if (trusted) xfHost = xfHost === '' ? value : `${xfHost}, ${value}`
        continue
      case 'host':
        host = value
        hostCount++
        break
      case 'content-length':
        contentLength = Number(value)
        break
      case 'max-forwards':
        if (mfMethod) {
          const n = Number(value)
          maxForwards = Number.isInteger(n) && n >= 0 ? n : 0
          continue
        }
        break
    }
    if (rewrite !== null && rewrite.drop.has(lower)) continue
    out += `${name}: ${value}\r\n`
  }
  if (listed !== null) {
    // rare: Connection named headers; rebuild without them (they may have come before Connection)
    out = ''
    for (let i = 0; i < raw.length; i += 2) {
      const lower = raw[i]!.toLowerCase()
      if (HOP_BY_HOP.has(lower) || listed.has(lower) || lower === 'x-forwarded-for' || lower === 'x-forwarded-proto' || lower === 'x-forwarded-host') continue
      if ((mfMethod && lower === 'max-forwards') || (rewrite !== null && rewrite.drop.has(lower))) continue
      if (obs !== null && (lower === idHeader || (tracing && lower === 'traceparent'))) continue
      out += `${raw[i]!}: ${raw[i + 1]!}\r\n`
    }
    if (listed.has('x-forwarded-for')) xff = undefined
    if (listed.has('x-forwarded-proto')) xfProto = ''
    if (listed.has('x-forwarded-host')) xfHost = ''
    if (listed.has('max-forwards')) maxForwards = -1
  }
  const drop = rewrite?.drop
  if (drop === undefined || !drop.has('x-forwarded-for')) out += `x-forwarded-for: ${xff === undefined ? clientIp : `${xff}, ${clientIp}`}\r\n`
  if (drop === undefined || !drop.has('x-forwarded-proto')) out += `x-forwarded-proto: ${xfProto === '' ? proto : xfProto}\r\n`
  if ((xfHost !== '' || host !== '') && (drop === undefined || !drop.has('x-forwarded-host'))) out += `x-forwarded-host: ${xfHost === '' ? host : xfHost}\r\n`
  if (maxForwards > 0) out += `max-forwards: ${maxForwards - 1}\r\n`
  if (obs !== null) {
    if (idHeader !== '') {
      // a second pass (a route's rewrite) keeps the id the first one made
      if (rid === '') rid = f.requestId !== '' ? f.requestId : newRequestId()
      f.requestId = rid
      out += `${idHeader}: ${rid}\r\n`
    }
    if (obs.tracer !== null) out += obs.tracer.headerLine(f as RequestHeadFacts & TraceFacts, traceparent)
  }
  if (rewrite !== null) out += rewrite.lines
  out += VIA
  f.headLines = out
  f.headBytes = bytes
  f.hostHeader = host
  f.hostCount = hostCount
  f.contentLength = chunked ? -1 : contentLength
  f.chunkedIn = chunked
  f.otherCoding = otherCoding
  f.expectContinue = expectContinue
  f.badExpect = badExpect
  f.maxForwards = maxForwards
  f.upgradeTo = upgradeTo
}

/** What the response pass reports. */
export interface ResponseHeadFacts {
  /** the filtered header lines, each ending in CRLF */
  respLines: string
  /** the upstream declared a Content-Length */
  respLength: number
  respChunked: boolean
}

/**
 * Response pass: hop-by-hop and Connection-listed names dropped; everything else passes as it came,
 * except what the route's `rewrite` drops (its set lines come last). `noLength`: Content-Length is
 * dropped too (a 1xx or a 204 must not carry one, RFC 9110 §8.6).
 */
export function responseHead (f: ResponseHeadFacts, raw: readonly string[], rewrite: HeaderRewrite | null = null, noLength = false, idHeader = '', requestId = ''): void {
  let out = ''
  let listed: Set<string> | null = null
  let length = -1
  let chunked = false
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!
    const lower = name.toLowerCase()
    if (HOP_BY_HOP.has(lower)) {
      if (lower === 'connection') listed = addConnectionTokens(raw[i + 1]!, listed)
      else if (lower === 'transfer-encoding') chunked = true
      continue
    }
    if (lower === 'content-length') {
      if (noLength) continue
      length = Number(raw[i + 1]!)
    }
    if (rewrite !== null && rewrite.drop.has(lower)) continue
    // the request id the client gets is claylb's (an upstream that echoes it would double it)
    if (lower === idHeader) continue
    out += `${name}: ${raw[i + 1]!}\r\n`
  }
  if (listed !== null) {
    out = ''
    for (let i = 0; i < raw.length; i += 2) {
      const lower = raw[i]!.toLowerCase()
      if (HOP_BY_HOP.has(lower) || listed.has(lower) || (noLength && lower === 'content-length') || (rewrite !== null && rewrite.drop.has(lower)) || lower === idHeader) continue
      out += `${raw[i]!}: ${raw[i + 1]!}\r\n`
    }
  }
  if (rewrite !== null) out += rewrite.lines
  if (idHeader !== '') out += `${idHeader}: ${requestId}\r\n`
  f.respLines = out
  f.respLength = chunked ? -1 : length
  f.respChunked = chunked
}

/**
 * The response pass as a flat [name, value, …] list (hop-by-hop and Connection-listed names dropped),
 * for the idempotency record of a keyed request only: the hot path writes `respLines` instead.
 */
export function responseHeaderList (raw: readonly string[]): string[] {
  let listed: Set<string> | null = null
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === 'connection') listed = addConnectionTokens(raw[i + 1]!, listed)
  const out: string[] = []
  for (let i = 0; i < raw.length; i += 2) {
    const lower = raw[i]!.toLowerCase()
    if (!HOP_BY_HOP.has(lower) && (listed === null || !listed.has(lower))) out.push(raw[i]!, raw[i + 1]!)
  }
  return out
}
