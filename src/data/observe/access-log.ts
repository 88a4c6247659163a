/**
 * @module data/observe/access-log
 * The access log's lines (`log.access`): JSON (pino's envelope, the fields chosen in `fields`), or
 * Apache/nginx `combined` / `common`, so existing log tooling reads them. A line is built once when
 * its request ends, from the exchange's plain fields, by a list of field writers chosen at start (no
 * branch per field not asked for); the clock is the engine's coarse one (no Date.now per line), and
 * the string goes straight into the batch buffer of the sink (data/observe/log-sink).
 */
import type { LineSink } from './log-sink.js'
import { ACCESS_FIELDS, type AccessField } from '../../shared/config/vocabulary.js'

export { ACCESS_FIELDS, type AccessField }
import { LineBuilder } from './line-builder.js'

/** how the request ended for its client */
export const ENDED = ['complete', 'client-aborted', 'upstream-cut'] as const
export const ENDED_COMPLETE = 0
export const ENDED_CLIENT_ABORTED = 1
export const ENDED_UPSTREAM_CUT = 2

/** What a line reads of a finished request (the engine's exchange implements it). */
export interface LoggedRequest {
  readonly method: string
  /** the path as sent upstream */
  readonly path: string
  readonly hostHeader: string
  /** the status the client saw (the head it got; 499 when it left before any) */
  readonly clientStatus: number
  /** ENDED index */
  readonly ended: number
  readonly attempts: number
  readonly replayed: boolean
  readonly requestId: string
  traceId: string
  /** filled by rate limits when they are configured; '' otherwise */
  readonly rateLimit: string
  readonly bytesIn: number
  readonly headOut: number
  readonly bodyOut: number
  /** ms from the first try to the answer's head; -1 when there was none (or it is not measured) */
  readonly upstreamMs: number
  readonly host: { readonly id: string } | undefined
  readonly pool: { readonly name: string } | null
  readonly route: { readonly index: number } | null
  readonly protocol: string
  /** the client after trustedProxies (X-Forwarded-For from a trusted peer), else the peer */
  resolvedClient (): string
  tlsVersion (): string
  sni (): string
  header (lowerName: string): string
  idempotencyOutcome (): string
}


/** `log.access: true`: the line README documented before fields existed, plus how it ended and its id */
export const DEFAULT_FIELDS: readonly AccessField[] = ['method', 'path', 'status', 'ended', 'upstream', 'attempts', 'ms', 'requestId', 'replayed']

export type AccessFormat = 'json' | 'combined' | 'common'

export interface AccessLogOptions {
  format: AccessFormat
  fields: readonly AccessField[]
  /** pino's `name` */
  name: string
}

export interface AccessLog {
  /** one line for one finished request; `now`: the coarse clock (ms); `ms`: its duration */
  request (ex: LoggedRequest, now: number, ms: number): void
  /** any upstream time is wanted (the exchange measures it only then) */
  readonly timesUpstream: boolean
  flush (): Promise<void>
  reopen (): void
  readonly dropped: number
}

/** a value inside a combined line's quotes: `"` `\` and control bytes as \xHH (nginx's escaping) */
function quoted (s: string): string {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 32 || c === 34 || c === 92 || c === 127) return s.replace(/["\\\x00-\x1f\x7f]/g, (ch) => '\\x' + ch.charCodeAt(0).toString(16).padStart(2, '0'))
  }
  return s
}

type Writer = (ex: LoggedRequest, ms: number, b: LineBuilder) => void
/** `,"key":"value"` when the value is not empty */
const opt = (b: LineBuilder, key: string, v: string): void => {
  if (v === '') return
  b.s(key)
  b.js(v)
}

const WRITERS: Record<AccessField, Writer> = {
  // always in pino's envelope: naming it changes nothing
  time: () => {},
  client: (ex, _ms, b) => { b.s(',"client":'); b.js(ex.resolvedClient()) },
  method: (ex, _ms, b) => { b.s(',"method":'); b.js(ex.method) },
  host: (ex, _ms, b) => { b.s(',"host":'); b.js(ex.hostHeader) },
  path: (ex, _ms, b) => { b.s(',"path":'); b.js(ex.path) },
  protocol: (ex, _ms, b) => { b.s(',"protocol":'); b.js(ex.protocol) },
  tls: (ex, _ms, b) => opt(b, ',"tls":', ex.tlsVersion()),
  sni: (ex, _ms, b) => opt(b, ',"sni":', ex.sni()),
  status: (ex, _ms, b) => { b.s(',"status":'); b.n(ex.clientStatus) },
  ended: (ex, _ms, b) => { b.s(',"ended":'); b.js(ENDED[ex.ended]!) },
  bytesIn: (ex, _ms, b) => { b.s(',"bytesIn":'); b.n(ex.bytesIn) },
  bytesOut: (ex, _ms, b) => { b.s(',"bytesOut":'); b.n(ex.headOut + ex.bodyOut) },
  bodyBytesOut: (ex, _ms, b) => { b.s(',"bodyBytesOut":'); b.n(ex.bodyOut) },
  ms: (_ex, ms, b) => { b.s(',"ms":'); b.ms(ms) },
  upstreamMs: (ex, _ms, b) => { if (ex.upstreamMs >= 0) { b.s(',"upstreamMs":'); b.ms(ex.upstreamMs) } },
  upstream: (ex, _ms, b) => { if (ex.host !== undefined) { b.s(',"upstream":'); b.js(ex.host.id) } },
  attempts: (ex, _ms, b) => { b.s(',"attempts":'); b.n(ex.attempts) },
  pool: (ex, _ms, b) => { if (ex.pool !== null) { b.s(',"pool":'); b.js(ex.pool.name) } },
  route: (ex, _ms, b) => { if (ex.route !== null) { b.s(',"route":'); b.s(String(ex.route.index)) } },
  requestId: (ex, _ms, b) => opt(b, ',"requestId":', ex.requestId),
  traceId: (ex, _ms, b) => opt(b, ',"traceId":', ex.traceId),
  userAgent: (ex, _ms, b) => opt(b, ',"userAgent":', ex.header('user-agent')),
  referer: (ex, _ms, b) => opt(b, ',"referer":', ex.header('referer')),
  idempotency: (ex, _ms, b) => opt(b, ',"idempotency":', ex.idempotencyOutcome()),
  replayed: (ex, _ms, b) => { if (ex.replayed) b.s(',"replayed":true') },
  rateLimit: (ex, _ms, b) => opt(b, ',"rateLimit":', ex.rateLimit),
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec']
const two = (n: number): string => n < 10 ? '0' + n : String(n)

/** `[10/Oct/2000:13:55:36 +0000]`, made once a second */
class CommonTime {
  private second = -1
  private text = ''
  at (now: number): string {
    const s = Math.floor(now / 1000)
    if (s !== this.second) {
      this.second = s
      const d = new Date(s * 1000)
      this.text = `[${two(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]!}/${d.getUTCFullYear()}:${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())} +0000]`
    }
    return this.text
  }
}

export function createAccessLog (o: AccessLogOptions, sink: LineSink): AccessLog {
  const times = o.format === 'json' && o.fields.includes('upstreamMs')
  const b = new LineBuilder()
  let line: (ex: LoggedRequest, now: number, ms: number) => void
  if (o.format === 'json') {
    const prefix = '{"level":30,"time":'
    const middle = `,"pid":${process.pid},"name":${JSON.stringify(o.name)}`
    const writers = [...new Set(o.fields)].filter((f) => f !== 'time').map((f) => WRITERS[f])
    const n = writers.length
    line = (ex, now, ms) => {
      b.s(prefix)
      b.n(now)
      b.s(middle)
      for (let i = 0; i < n; i++) writers[i]!(ex, ms, b)
      b.s(',"msg":"request"}\n')
    }
  } else {
    const clock = new CommonTime()
    const combined = o.format === 'combined'
    line = (ex, now) => {
      // %h %l %u %t "%r" %>s %b, then "%{Referer}i" "%{User-agent}i" for combined
      b.s(ex.resolvedClient())
      b.s(' - - ')
      b.s(clock.at(now))
      b.s(' "')
      b.s(quoted(ex.method))
      b.s(' ')
      b.s(quoted(ex.path))
      b.s(' ')
      b.s(ex.protocol)
      b.s('" ')
      b.n(ex.clientStatus)
      b.s(' ')
      if (ex.bodyOut === 0) b.s('-')
      else b.n(ex.bodyOut)
      if (combined) {
        const referer = ex.header('referer')
        const ua = ex.header('user-agent')
        b.s(' "')
        b.s(referer === '' ? '-' : quoted(referer))
        b.s('" "')
        b.s(ua === '' ? '-' : quoted(ua))
        b.s('"')
      }
      b.s('\n')
    }
  }
  return {
    request (ex, now, ms) {
      b.at = 0
      line(ex, now, ms)
      sink.writeBytes(b.buf, b.at)
    },
    timesUpstream: times,
    flush () { return sink.flush() },
    reopen () { sink.reopen() },
    get dropped () { return sink.dropped },
  }
}
