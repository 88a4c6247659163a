/**
 * @module data/observe/access-log
 * The access log's lines (`log.access`): JSON (pino's envelope, the fields chosen in `fields`), or
 * Apache/nginx `combined` / `common`, so existing log tooling reads them. A line is built once when
 * its request ends, from the exchange's plain fields, by a list of field writers chosen at start (no
 * branch per field not asked for); the clock is the engine's coarse one (no Date.now per line), and
 * the string goes straight into the batch buffer of the sink (data/observe/log-sink).
 */
import type { LineSink } from './log-sink.js'

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
  clientAddress (): string
  tlsVersion (): string
  sni (): string
  header (lowerName: string): string
  idempotencyOutcome (): string
}

export const ACCESS_FIELDS = ['time', 'client', 'method', 'host', 'path', 'protocol', 'tls', 'sni', 'status', 'ended', 'bytesIn', 'bytesOut',
  'bodyBytesOut', 'ms', 'upstreamMs', 'upstream', 'attempts', 'pool', 'route', 'requestId', 'traceId', 'userAgent', 'referer',
  'idempotency', 'replayed', 'rateLimit'] as const
export type AccessField = typeof ACCESS_FIELDS[number]

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
  flush (): void
  reopen (): void
  readonly dropped: number
}

/** a JSON string of `s`; JSON.stringify only when `s` has a character that needs escaping */
export function jsonString (s: string): string {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 32 || c === 34 || c === 92) return JSON.stringify(s)
  }
  return '"' + s + '"'
}

/** a value inside a combined line's quotes: `"` `\` and control bytes as \xHH (nginx's escaping) */
function quoted (s: string): string {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 32 || c === 34 || c === 92 || c === 127) return s.replace(/["\\\x00-\x1f\x7f]/g, (ch) => '\\x' + ch.charCodeAt(0).toString(16).padStart(2, '0'))
  }
  return s
}

type Writer = (ex: LoggedRequest, ms: number) => string
const opt = (key: string, v: string): string => v === '' ? '' : `,"${key}":${jsonString(v)}`

const WRITERS: Record<AccessField, Writer> = {
  // always in pino's envelope: naming it changes nothing
  time: () => '',
  client: (ex) => ',"client":' + jsonString(ex.clientAddress()),
  method: (ex) => ',"method":' + jsonString(ex.method),
  host: (ex) => ',"host":' + jsonString(ex.hostHeader),
  path: (ex) => ',"path":' + jsonString(ex.path),
  protocol: (ex) => ',"protocol":"' + ex.protocol + '"',
  tls: (ex) => opt('tls', ex.tlsVersion()),
  sni: (ex) => opt('sni', ex.sni()),
  status: (ex) => ',"status":' + ex.clientStatus,
  ended: (ex) => ',"ended":"' + ENDED[ex.ended] + '"',
  bytesIn: (ex) => ',"bytesIn":' + ex.bytesIn,
  bytesOut: (ex) => ',"bytesOut":' + (ex.headOut + ex.bodyOut),
  bodyBytesOut: (ex) => ',"bodyBytesOut":' + ex.bodyOut,
  ms: (_ex, ms) => ',"ms":' + Math.round(ms * 100) / 100,
  upstreamMs: (ex) => ex.upstreamMs < 0 ? '' : ',"upstreamMs":' + Math.round(ex.upstreamMs * 100) / 100,
  upstream: (ex) => ex.host === undefined ? '' : ',"upstream":' + jsonString(ex.host.id),
  attempts: (ex) => ',"attempts":' + ex.attempts,
  pool: (ex) => ex.pool === null ? '' : ',"pool":' + jsonString(ex.pool.name),
  route: (ex) => ex.route === null ? '' : ',"route":' + ex.route.index,
  requestId: (ex) => opt('requestId', ex.requestId),
  traceId: (ex) => opt('traceId', ex.traceId),
  userAgent: (ex) => opt('userAgent', ex.header('user-agent')),
  referer: (ex) => opt('referer', ex.header('referer')),
  idempotency: (ex) => opt('idempotency', ex.idempotencyOutcome()),
  replayed: (ex) => ex.replayed ? ',"replayed":true' : '',
  rateLimit: (ex) => opt('rateLimit', ex.rateLimit),
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
  let line: (ex: LoggedRequest, now: number, ms: number) => string
  if (o.format === 'json') {
    const prefix = '{"level":30,"time":'
    const middle = `,"pid":${process.pid},"name":${JSON.stringify(o.name)}`
    const writers = [...new Set(o.fields)].filter((f) => f !== 'time').map((f) => WRITERS[f])
    const n = writers.length
    line = (ex, now, ms) => {
      let s = prefix + now + middle
      for (let i = 0; i < n; i++) s += writers[i]!(ex, ms)
      return s + ',"msg":"request"}\n'
    }
  } else {
    const clock = new CommonTime()
    const combined = o.format === 'combined'
    line = (ex, now) => {
      // %h %l %u %t "%r" %>s %b, then "%{Referer}i" "%{User-agent}i" for combined
      const s = ex.clientAddress() + ' - - ' + clock.at(now) + ' "' + quoted(ex.method) + ' ' + quoted(ex.path) + ' ' + ex.protocol + '" ' +
        ex.clientStatus + ' ' + (ex.bodyOut === 0 ? '-' : ex.bodyOut)
      if (!combined) return s + '\n'
      const referer = ex.header('referer')
      const ua = ex.header('user-agent')
      return s + ' "' + (referer === '' ? '-' : quoted(referer)) + '" "' + (ua === '' ? '-' : quoted(ua)) + '"\n'
    }
  }
  return {
    request (ex, now, ms) {
      sink.write(line(ex, now, ms))
    },
    timesUpstream: times,
    flush () { sink.flush() },
    reopen () { sink.reopen() },
    get dropped () { return sink.dropped },
  }
}
