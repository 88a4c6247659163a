/**
 * @module engine/h2
 * HTTP/2 to clients (listen.http2): node:http2 sessions on the TLS sockets that chose `h2` by ALPN,
 * each stream driving the engine's own Exchange, so a stream gets everything a request on HTTP/1.1
 * gets (balancer, retries, deadlines, limits, header rules, metrics, access log, problems) from the
 * same code. The exchange writes an HTTP/1.1 answer; the stream reads it back with llhttp (in C++)
 * and sends it as HEADERS and DATA frames.
 *
 * Hardening is nghttp2's with explicit bounds: a stream starts its exchange only after the read its
 * HEADERS came in was handled whole, so a stream reset in that read (a rapid reset flood,
 * CVE-2023-44487) costs no upstream connection; resets past an allowance end the session
 * (h2-session-guard.ts); a reset stream's exchange ends at once (its upstream try destroyed);
 * CONTINUATION floods end the session; a header list past `limits.maxHeaderBytes` is answered 431
 * (problem+json) when it arrives before the client acknowledged the limit, and refused by nghttp2
 * (RST_STREAM) after; concurrent streams per session are capped; malformed fields and a `host` that
 * contradicts `:authority` are refused (h2-fields.ts, README "TLS, SNI and HTTP/2").
 */
import http2, { type Http2Server, type Http2Session, type IncomingHttpHeaders, type OutgoingHttpHeaders, type ServerHttp2Stream } from 'node:http2'
import type { TLSSocket } from 'node:tls'
import type { Engine } from './engine.js'
import { Exchange, type AnswerSink, type ClientSide } from './exchange.js'
import { createParser, NO_BODY, releaseParser, type Parser, type ParseError, type ParserCallbacks } from '../http/llhttp.js'
import { ResetBudget, goawayCode } from './h2-session-guard.js'
import { hasFlankedValue } from '../http/h2-fields.js'
import type { UpstreamConn } from '../upstream/upstream-pool.js'
import { clientAddress } from '../policy/proxy-protocol.js'

/** each session's client address, read when it began (a stream starting after its socket closed reads none) */
const peers = new WeakMap<Http2Session, string>()

/** streams one session may have open at once (nginx's http2_max_concurrent_streams) */
export const H2_MAX_CONCURRENT_STREAMS = 128

const { NGHTTP2_INTERNAL_ERROR, NGHTTP2_NO_ERROR, NGHTTP2_PROTOCOL_ERROR } = http2.constants

function ignore (): void {}

/** slots per stream in H2Front.pending */
const PENDING = 5

/** HTTP/1.1 header names that have no place in HTTP/2 (RFC 9113 §8.2.2) */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te'])

export class H2Front {
  readonly server: Http2Server
  private readonly sessions = new Map<Http2Session, ResetBudget>()
  /**
   * Streams whose HEADERS came in the read being processed: each starts its exchange after nghttp2
   * has gone through the whole read, so a stream the same read reset (HEADERS then RST_STREAM, a
   * rapid reset flood) never starts one and never makes an upstream connection. Flat, PENDING slots
   * a stream (the stream, its headers, flags, raw headers, its session's budget: null once its reset
   * was counted); one setImmediate per read, not per stream.
   */
  private readonly pending: Array<ServerHttp2Stream | IncomingHttpHeaders | number | string[] | ResetBudget | null> = []
  private readonly startPending = (): void => { this.startStreams() }

  constructor (readonly engine: Engine) {
    const o = engine.o
    this.server = http2.createServer({
      maxSessionMemory: 16,
      // a header list past the limit is refused with RST_STREAM once the client acknowledged these settings
      // (before that, H2Stream answers it 431 itself)
      maxHeaderListPairs: 256,
      // Node 22+: a value with whitespace at its ends reaches claylb, which refuses the stream (see
      // h2-fields.ts) rather than nghttp2 dropping the field and serving the request without it
      ...{ strictFieldWhitespaceValidation: false },
      settings: {
        maxConcurrentStreams: H2_MAX_CONCURRENT_STREAMS,
        maxHeaderListSize: o.maxHeaderBytes,
        enablePush: false,
      },
    })
    this.server.on('session', (session) => {
      // the peer's address, read once while the socket is surely open (engine.accept checked it)
      peers.set(session, session.socket === undefined ? '' : engine.proxyProtocol ? clientAddress(session.socket) : session.socket.remoteAddress ?? '')
      this.sessions.set(session, new ResetBudget(session))
      session.on('close', () => this.sessions.delete(session))
      // node:http2 destroys a session for an invalid frame nghttp2 reported with INTERNAL_ERROR before
      // nghttp2's own GOAWAY goes out: send the code nghttp2 would have (FLOW_CONTROL_ERROR, …) instead
      const destroy = session.destroy
      session.destroy = function (this: Http2Session, error?: Error, code?: number) {
        destroy.call(this, error, code ?? (error instanceof Error ? goawayCode(error) : undefined))
      }
      session.on('error', () => session.destroy())
      // an idle session closes (GOAWAY, then open streams finish) like an idle HTTP/1.1 connection
      session.setTimeout(o.idleTimeoutMs, () => session.close())
      if (engine.draining) session.close()
    })
    this.server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number, rawHeaders: string[]) => {
      const session = stream.session
      if (session === undefined) return
      // nghttp2 handles a read's frames in order: a stream reset in this read is closed by the time
      // the next stream's HEADERS arrives, so resets are counted (and a flood cut) within the read
      const budget = this.sessions.get(session)
      if (budget === undefined) return // its session is gone
      const p = this.pending
      if (p.length === 0) setImmediate(this.startPending)
      else this.countReset(p.length - PENDING)
      // a stream's errors end it (its 'close' follows); one listener from the start, since a session
      // destroyed while the stream waits here destroys it with the session's error
      stream.on('error', ignore)
      p.push(stream, headers, flags, rawHeaders, budget)
    })
  }

  /** the pending stream at `i` was reset by its client before its exchange started: count it once */
  private countReset (i: number): void {
    const p = this.pending
    const budget = p[i + 4] as ResetBudget | null
    const stream = p[i] as ServerHttp2Stream
    if (budget === null || !(stream.closed || stream.destroyed)) return
    p[i + 4] = null
    budget.reset()
  }

  private startStreams (): void {
    const p = this.pending
    for (let i = 0; i < p.length; i += PENDING) {
      const stream = p[i] as ServerHttp2Stream
      this.countReset(i)
      if (stream.closed || stream.destroyed) continue
      if (hasFlankedValue(p[i + 3] as string[])) {
        stream.close(NGHTTP2_PROTOCOL_ERROR) // malformed (RFC 9113 §8.1.1): a stream error
        continue
      }
      // eslint-disable-next-line no-new
      new H2Stream(this.engine, p[i + 4] as ResetBudget, stream, p[i + 1] as IncomingHttpHeaders, p[i + 2] as number, p[i + 3] as string[])
    }
    p.length = 0
  }

  accept (socket: TLSSocket): void {
    this.server.emit('connection', socket)
  }

  /** drain: every session gets a GOAWAY, its open streams finish */
  close (): void {
    for (const s of this.sessions.keys()) s.close()
  }

  destroyAll (): void {
    for (const s of this.sessions.keys()) s.destroy()
  }
}

/** One HTTP/2 stream as the client side of an Exchange. */
class H2Stream implements ClientSide, AnswerSink, ParserCallbacks {
  readonly engine: Engine
  readonly remoteAddress: string
  readonly trusted: boolean
  readonly http2 = true
  readonly socket: AnswerSink = this
  private readonly stream: ServerHttp2Stream
  private readonly ex: Exchange
  private parser: Parser | null = null
  private holds = 0
  /** the final answer was sent whole (or the stream is gone): further bytes are dropped */
  private done = false
  private headSent = false
  private ok = true

  constructor (engine: Engine, private readonly budget: ResetBudget, stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number, raw: string[]) {
    this.engine = engine
    this.stream = stream
    this.remoteAddress = stream.session === undefined ? '' : peers.get(stream.session) ?? ''
    this.trusted = engine.routing.trusted.trusts(this.remoteAddress)
    const ex = this.ex = new Exchange(this)
    // the request as HTTP/1.1 sees it: pseudo-headers out, :authority as Host, cookies joined (RFC 9113 §8.2.3)
    const h1: string[] = []
    let cookie = ''
    let host: string | undefined
    // the header list's size as HTTP/1.1 would carry it (name: value CRLF): nghttp2 enforces
    // SETTINGS_MAX_HEADER_LIST_SIZE only once the client acknowledged it, so a session's first streams
    // are measured here
    let bytes = 0
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!
      bytes += name.length + raw[i + 1]!.length + 4
      if (name.charCodeAt(0) === 58 /* : */) continue
      if (name === 'cookie') {
        cookie = cookie === '' ? raw[i + 1]! : `${cookie}; ${raw[i + 1]!}`
        continue
      }
      if (name === 'host' && host === undefined) host = raw[i + 1]!
      h1.push(name, raw[i + 1]!)
    }
    const authority = headers[':authority']
    if (host === undefined && typeof authority === 'string') h1.push('host', authority)
    if (cookie !== '') h1.push('cookie', cookie)
    const endStream = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0
    ex.fromHead(1, 1, h1, String(headers[':method'] ?? ''), String(headers[':path'] ?? ''), true)
    ex.upgradeTo = '' // HTTP/2 has no Upgrade (RFC 9113 §8.6)
    // RFC 9113 §8.3.1: a host that names another entity than :authority makes the request malformed;
    // answered 400 (as nginx; HAProxy forwards :authority), never routed by either of the two
    if (host !== undefined && typeof authority === 'string' && host.toLowerCase() !== authority.toLowerCase()) {
      ex.refuse('CLAYLB_BAD_REQUEST', ':authority and host name different hosts')
    }
    if (bytes > engine.o.maxHeaderBytes) ex.refuse('CLAYLB_HEADERS_TOO_LARGE', `request headers exceed ${engine.o.maxHeaderBytes} bytes`)
    // a body without a declared length goes upstream chunked, as HTTP/1.1 requires
    if (!endStream && ex.contentLength < 0) ex.chunkedIn = true
    stream.on('data', (d: Buffer) => ex.onClientBody(d))
    stream.on('end', () => ex.onClientBodyEnd())
    stream.on('drain', () => ex.onClientDrain())
    stream.on('close', () => this.onClose())
    ex.activate()
    if (endStream && !ex.bodyDone) ex.onClientBodyEnd()
  }

  // ---- ClientSide ----

  hold (bit: number): void {
    if (this.holds === 0) this.stream.pause()
    this.holds |= bit
  }

  unhold (bit: number): void {
    if ((this.holds & bit) === 0) return
    this.holds &= ~bit
    if (this.holds === 0) this.stream.resume()
  }

  uncorkLater (c: UpstreamConn): void {
    c.uncork()
  }

  tlsSocket (): TLSSocket | null {
    return (this.stream.session?.socket as TLSSocket | undefined) ?? null
  }

  lastAnswer (): boolean {
    return false
  }

  exchangeDone (_ex: Exchange): void {
    // answered before the client's body was all in (a 413, a 502 mid-upload): once the answer is
    // handed over, RST_STREAM(NO_ERROR) asks the client to stop sending (RFC 9113 §8.1)
    const s = this.stream
    if (s.readableEnded || s.destroyed) return
    if (s.writableFinished) s.close(NGHTTP2_NO_ERROR)
    else s.once('finish', () => s.close(NGHTTP2_NO_ERROR))
  }

  private onClose (): void {
    if (!this.done) this.budget.reset() // the client's RST_STREAM before the answer was whole
    this.done = true
    if (this.parser !== null) releaseParser(this.parser)
    this.parser = null
    // a client's RST_STREAM (a cancel, or a rapid reset flood): the exchange ends now, its try destroyed
    if (!this.ex.finished) this.ex.clientClosed()
  }

  // ---- AnswerSink: the exchange's HTTP/1.1 answer, read back ----

  write (data: string | Buffer, encoding?: BufferEncoding): boolean {
    if (this.done) return true
    if (this.parser === null) this.parser = createParser('response', 1 << 20, this)
    this.ok = true
    const ret = this.parser.execute(typeof data === 'string' ? Buffer.from(data, encoding ?? 'latin1') : data)
    if (typeof ret !== 'number') this.destroy()
    return this.ok
  }

  cork (): void {}
  uncork (): void {}

  /** the answer is cut: the client sees the stream reset, never a truncated answer taken for whole */
  destroy (): void {
    this.done = true
    if (!this.stream.destroyed) this.stream.close(NGHTTP2_INTERNAL_ERROR)
  }

  onHeadersComplete (_maj: number, _min: number, raw: string[], _method: number | undefined, _url: string,
    statusCode: number | undefined): number {
    const status = statusCode ?? 502
    const headers: OutgoingHttpHeaders = { ':status': status }
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!.toLowerCase()
      if (CONNECTION_SPECIFIC.has(name)) continue
      const prev = headers[name]
      const value = raw[i + 1]!
      headers[name] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [String(prev), value]
    }
    const s = this.stream
    if (s.destroyed) return NO_BODY
    try {
      if (status < 200) {
        // every 1xx the exchange passes on (it never passes a 101 here) is an interim HEADERS frame
        s.additionalHeaders(headers)
        return NO_BODY
      }
      this.headSent = true
      const noBody = this.ex.method === 'HEAD' || status === 204 || status === 304
      s.respond(headers, { endStream: noBody })
      return noBody ? NO_BODY : 0
    } catch {
      // a header HTTP/2 cannot carry: the stream is reset rather than answered wrongly
      this.destroy()
      return NO_BODY
    }
  }

  onBody (chunk: Buffer): void {
    if (this.stream.destroyed || !this.headSent) return
    this.ok = this.stream.write(chunk)
  }

  onMessageComplete (): void {
    if (!this.headSent) return // an interim (1xx) answer
    this.done = true
    this.budget.served()
    if (!this.stream.destroyed && !this.stream.writableEnded) this.stream.end()
  }

  onExecute (_ret: number | ParseError): void {}
}
