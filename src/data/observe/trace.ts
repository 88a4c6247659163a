/**
 * @module data/observe/trace
 * W3C Trace Context (https://www.w3.org/TR/trace-context/) when `tracing` is configured: the
 * request's `traceparent` is read, claylb's own span id replaces the parent's in the one sent
 * upstream (so the upstream's span is claylb's child), and a request without a valid one starts a
 * trace, sampled with `tracing.sampleRatio`. A parent's sampled flag is kept (parent-based sampling,
 * as OpenTelemetry's default). `tracestate` passes unchanged. Without `tracing` none of this runs:
 * traceparent is an ordinary header.
 */
import { randomHex } from './random-hex.js'

/** what a request carries of its trace (the exchange implements it) */
export interface TraceFacts {
  /** 32 hex digits; '' when tracing is off */
  traceId: string
  /** the client's span (16 hex), '' when claylb started the trace */
  parentSpanId: string
  /** claylb's span for this request */
  spanId: string
  sampled: boolean
}

/** where sampled spans go (data/observe/otlp) */
export interface SpanSink {
  add (span: FinishedSpan): void
  /** send what waits (shutdown) */
  close (): void
}

/** what an exported span is made of, read when the request ends */
export interface FinishedSpan extends TraceFacts {
  readonly method: string
  readonly path: string
  readonly hostHeader: string
  readonly protocolVersion: string
  readonly clientAddress: string
  readonly status: number
  readonly upstream: string | undefined
  readonly requestId: string
  readonly userAgent: string
  readonly startMs: number
  readonly endMs: number
  readonly ended: string
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-|$)/
const ZERO_TRACE = '00000000000000000000000000000000'
const ZERO_SPAN = '0000000000000000'

export class Tracer {
  constructor (readonly sampleRatio: number, readonly sink: SpanSink | null) {}

  /** the traceparent line for the upstream; `incoming`: the request's traceparent ('' for none) */
  headerLine (f: TraceFacts, incoming: string): string {
    // a second pass over the same head (a route's rewrite) keeps the span the first one made
    if (f.spanId !== '') return `traceparent: 00-${f.traceId}-${f.spanId}-${f.sampled ? '01' : '00'}\r\n`
    const m = incoming === '' ? null : TRACEPARENT.exec(incoming.trim())
    // version ff is invalid; version 00 has exactly four fields; ids of all zeros are invalid
    if (m !== null && m[1] !== 'ff' && !(m[1] === '00' && m[5] !== '') && m[2] !== ZERO_TRACE && m[3] !== ZERO_SPAN) {
      f.traceId = m[2]!
      f.parentSpanId = m[3]!
      f.sampled = (parseInt(m[4]!, 16) & 1) === 1
    } else {
      f.traceId = randomHex(16)
      f.parentSpanId = ''
      f.sampled = this.sampleRatio > 0 && Math.random() < this.sampleRatio
    }
    f.spanId = randomHex(8)
    return `traceparent: 00-${f.traceId}-${f.spanId}-${f.sampled ? '01' : '00'}\r\n`
  }
}
