/**
 * @module data/observe/otlp
 * Sampled spans exported over OTLP/HTTP (tracing.otlp, e.g. http://collector:4318/v1/traces) in the
 * protobuf encoding: what every collector, Jaeger and Tempo accept by default, half the bytes of the
 * JSON encoding, and a few dozen lines of wire format here instead of the OpenTelemetry SDK (whose
 * per-span objects, context manager and async hooks would cost every request). Spans are queued when
 * their request ends and sent in batches off the request path (at most 512 a batch, once a second,
 * one POST at a time); past 2048 waiting they are dropped and counted, never memory grown.
 * Attributes follow the OpenTelemetry HTTP semantic conventions.
 */
import type { Logger } from '../../shared/log.js'
import type { FinishedSpan, SpanSink } from './trace.js'

const BATCH = 512
const MAX_QUEUED = 2048
const EXPORT_TIMEOUT_MS = 10_000

// ---- protobuf wire format (https://protobuf.dev/programming-guides/encoding/) ----

function varint (n: number | bigint): number[] {
  let v = BigInt(n)
  const out: number[] = []
  do {
    let b = Number(v & 0x7fn)
    v >>= 7n
    if (v !== 0n) b |= 0x80
    out.push(b)
  } while (v !== 0n)
  return out
}

/** a length-delimited field (wire type 2): a string, bytes, or an embedded message */
function field (no: number, bytes: Uint8Array | number[]): Buffer {
  const b = Buffer.from(bytes)
  return Buffer.concat([Buffer.from([...varint((no << 3) | 2), ...varint(b.length)]), b])
}
const str = (no: number, s: string): Buffer => field(no, Buffer.from(s, 'utf8'))
const hex = (no: number, h: string): Buffer => field(no, Buffer.from(h, 'hex'))
const uint = (no: number, n: number): Buffer => Buffer.from([...varint(no << 3), ...varint(n)])
function fixed32 (no: number, n: number): Buffer {
  const b = Buffer.alloc(4)
  b.writeUInt32LE(n)
  return Buffer.concat([Buffer.from(varint((no << 3) | 5)), b])
}
function fixed64 (no: number, n: bigint): Buffer {
  const b = Buffer.alloc(8)
  b.writeBigUInt64LE(n)
  return Buffer.concat([Buffer.from(varint((no << 3) | 1)), b])
}
/** KeyValue { key = 1; AnyValue value = 2 }, AnyValue { string_value = 1; int_value = 3 } */
function attr (key: string, value: string | number): Buffer {
  const any = typeof value === 'string' ? str(1, value) : uint(3, value)
  return Buffer.concat([str(1, key), field(2, any)])
}

const SPAN_KIND_SERVER = 2
const STATUS_CODE_ERROR = 2
const nanos = (ms: number): bigint => BigInt(Math.round(ms * 1000)) * 1000n

/** Span (opentelemetry/proto/trace/v1/trace.proto) */
function span (s: FinishedSpan): Buffer {
  const attrs = [
    attr('http.request.method', s.method),
    attr('url.path', s.path.split('?', 1)[0]!),
    attr('http.response.status_code', s.status),
    attr('network.protocol.name', 'http'),
    attr('network.protocol.version', s.protocolVersion),
    attr('client.address', s.clientAddress),
    attr('claylb.request.ended', s.ended),
  ]
  const q = s.path.indexOf('?')
  if (q >= 0) attrs.push(attr('url.query', s.path.slice(q + 1)))
  if (s.hostHeader !== '') attrs.push(attr('server.address', s.hostHeader.replace(/:\d+$/, '')))
  if (s.userAgent !== '') attrs.push(attr('user_agent.original', s.userAgent))
  if (s.upstream !== undefined) attrs.push(attr('claylb.upstream', s.upstream))
  if (s.requestId !== '') attrs.push(attr('claylb.request.id', s.requestId))
  const parts = [hex(1, s.traceId), hex(2, s.spanId)]
  if (s.parentSpanId !== '') parts.push(hex(4, s.parentSpanId))
  parts.push(str(5, s.method), uint(6, SPAN_KIND_SERVER), fixed64(7, nanos(s.startMs)), fixed64(8, nanos(s.endMs)))
  for (const a of attrs) parts.push(field(9, a))
  // W3C flags (sampled), plus "whether the parent is remote is known" and, with a client's parent, "it is"
  parts.push(fixed32(16, 0x01 | 0x100 | (s.parentSpanId === '' ? 0 : 0x200)))
  // a server span is an error for a 5xx only (semantic conventions); Status { code = 3 }
  if (s.status >= 500 || s.ended !== 'complete') parts.push(field(15, uint(3, STATUS_CODE_ERROR)))
  return Buffer.concat(parts)
}

/** ExportTraceServiceRequest { ResourceSpans { Resource, ScopeSpans { InstrumentationScope, spans } } } */
export function encodeSpans (serviceName: string, spans: readonly FinishedSpan[]): Buffer {
  const resource = field(1, Buffer.concat([field(1, attr('service.name', serviceName)), field(1, attr('telemetry.sdk.name', 'claylb'))]))
  const scope = field(1, Buffer.concat([str(1, 'claylb'), str(2, '1')]))
  const scopeSpans = field(2, Buffer.concat([scope, ...spans.map((s) => field(2, span(s)))]))
  return field(1, Buffer.concat([resource, scopeSpans]))
}

export class OtlpExporter implements SpanSink {
  private queue: FinishedSpan[] = []
  private sending = false
  /** spans dropped: the queue was full, or their batch could not be delivered */
  dropped = 0
  exported = 0
  private readonly timer: NodeJS.Timeout

  constructor (private readonly url: string, private readonly serviceName: string, private readonly logger: Logger) {
    this.timer = setInterval(() => this.send(), 1000)
    this.timer.unref()
  }

  add (s: FinishedSpan): void {
    if (this.queue.length >= MAX_QUEUED) {
      this.dropped++
      return
    }
    this.queue.push(s)
    if (this.queue.length >= BATCH) this.send()
  }

  /** one batch, one POST at a time; a failed batch is dropped (counted) rather than retried into a pile */
  send (): void {
    if (this.sending || this.queue.length === 0) return
    const batch = this.queue.splice(0, BATCH)
    this.sending = true
    fetch(this.url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-protobuf' },
      body: encodeSpans(this.serviceName, batch),
      signal: AbortSignal.timeout(EXPORT_TIMEOUT_MS),
    }).then(async (res) => {
      await res.arrayBuffer()
      if (!res.ok) throw new Error(`HTTP ${res.status}`)
      this.exported += batch.length
    }).catch((err: unknown) => {
      this.dropped += batch.length
      this.logger.warn({ err: (err as Error).message, spans: batch.length }, 'tracing: OTLP export failed')
    }).finally(() => {
      this.sending = false
      if (this.queue.length >= BATCH) this.send()
    })
  }

  close (): void {
    clearInterval(this.timer)
    this.send()
  }
}
