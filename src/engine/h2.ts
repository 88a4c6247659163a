/**
 * @module engine/h2
 * HTTP/2 to clients (listen.http2): node:http2 sessions on the TLS sockets that chose `h2` by ALPN,
 * each stream driving the engine's own Exchange, so a stream gets everything a request on HTTP/1.1
 * gets (balancer, retries, deadlines, limits, header rules, metrics, access log, problems) from the
 * same code. The exchange writes an HTTP/1.1 answer; the stream reads it back with llhttp (in C++)
 * and sends it as HEADERS and DATA frames.
 *
 * Hardening is nghttp2's with explicit bounds: a rapid reset flood (CVE-2023-44487) is cut by its
 * reset-rate limit and by each reset stream's exchange ending at once (its upstream try destroyed);
 * CONTINUATION floods end the session; a header list past `limits.maxHeaderBytes` is answered 431
 * (problem+json) when it arrives before the client acknowledged the limit, and refused by nghttp2
 * (RST_STREAM) after;
 * concurrent streams per session are capped.
 */
import http2, { type Http2Server, type Http2Session, type IncomingHttpHeaders, type OutgoingHttpHeaders, type ServerHttp2Stream } from 'node:http2'
import type { TLSSocket } from 'node:tls'
import type { Engine } from './engine.js'
import { Exchange, type AnswerSink, type ClientSide } from './exchange.js'
import { createParser, type Parser, type ParseError, type ParserCallbacks } from './llhttp.js'
import type { UpstreamConn } from './upstream-pool.js'

/** streams one session may have open at once (nginx's http2_max_concurrent_streams) */
export const H2_MAX_CONCURRENT_STREAMS = 128

const { NGHTTP2_INTERNAL_ERROR, NGHTTP2_NO_ERROR } = http2.constants

/** HTTP/1.1 header names that have no place in HTTP/2 (RFC 9113 §8.2.2) */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te'])

export class H2Front {
  readonly server: Http2Server
  private readonly sessions = new Set<Http2Session>()

  constructor (readonly engine: Engine) {
    const o = engine.o
    this.server = http2.createServer({
      maxSessionMemory: 16,
      // a header list past the limit is refused with RST_STREAM once the client acknowledged these settings
      // (before that, H2Stream answers it 431 itself)
      maxHeaderListPairs: 256,
      settings: {
        maxConcurrentStreams: H2_MAX_CONCURRENT_STREAMS,
        maxHeaderListSize: o.maxHeaderBytes,
        enablePush: false,
      },
    })
    this.server.on('session', (session) => {
      this.sessions.add(session)
      session.on('close', () => this.sessions.delete(session))
      session.on('error', () => session.destroy())
      // an idle session closes (GOAWAY, then open streams finish) like an idle HTTP/1.1 connection
      session.setTimeout(o.idleTimeoutMs, () => session.close())
      if (engine.draining) session.close()
    })
    this.server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number, rawHeaders: string[]) => {
      // eslint-disable-next-line no-new
      new H2Stream(engine, stream, headers, flags, rawHeaders)
    })
  }

  accept (socket: TLSSocket): void {
    this.server.emit('connection', socket)
  }

  /** drain: every session gets a GOAWAY, its open streams finish */
  close (): void {
    for (const s of this.sessions) s.close()
  }

  destroyAll (): void {
    for (const s of this.sessions) s.destroy()
  }
}

/** One HTTP/2 stream as the client side of an Exchange. */
class H2Stream implements ClientSide, AnswerSink, ParserCallbacks {
  readonly engine: Engine
  readonly remoteAddress: string
  readonly trusted: boolean
  readonly socket: AnswerSink = this
  private readonly stream: ServerHttp2Stream
  private readonly ex: Exchange
  private parser: Parser | null = null
  private holds = 0
  /** the final answer was sent whole (or the stream is gone): further bytes are dropped */
  private done = false
  private headSent = false
  private ok = true

  constructor (engine: Engine, stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number, raw: string[]) {
    this.engine = engine
    this.stream = stream
    this.remoteAddress = stream.session?.socket?.remoteAddress ?? ''
    this.trusted = engine.routing.trusted.trusts(this.remoteAddress)
    const ex = this.ex = new Exchange(this)
    // the request as HTTP/1.1 sees it: pseudo-headers out, :authority as Host, cookies joined (RFC 9113 §8.2.3)
    const h1: string[] = []
    let cookie = ''
    let hasHost = false
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
      if (name === 'host') hasHost = true
      h1.push(name, raw[i + 1]!)
    }
    const authority = headers[':authority']
    if (!hasHost && typeof authority === 'string') h1.push('host', authority)
    if (cookie !== '') h1.push('cookie', cookie)
    const endStream = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0
    ex.fromHead(1, 1, h1, String(headers[':method'] ?? ''), String(headers[':path'] ?? ''), true)
    ex.upgradeTo = '' // HTTP/2 has no Upgrade (RFC 9113 §8.6)
    if (bytes > engine.o.maxHeaderBytes) ex.refuse('CLAYLB_HEADERS_TOO_LARGE', `request headers exceed ${engine.o.maxHeaderBytes} bytes`)
    // a body without a declared length goes upstream chunked, as HTTP/1.1 requires
    if (!endStream && ex.contentLength < 0) ex.chunkedIn = true
    stream.on('data', (d: Buffer) => ex.onClientBody(d))
    stream.on('end', () => ex.onClientBodyEnd())
    stream.on('drain', () => ex.onClientDrain())
    stream.on('error', () => {})
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
    this.done = true
    this.parser?.close()
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

  onHeaders (): void {}

  onHeadersComplete (_maj: number, _min: number, raw: string[], _method: number | undefined, _url: string | undefined,
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
    if (s.destroyed) return 1
    try {
      if (status < 200) {
        if (status === 100 || status === 103) s.additionalHeaders(headers)
        return 0
      }
      this.headSent = true
      const noBody = this.ex.method === 'HEAD' || status === 204 || status === 304
      s.respond(headers, { endStream: noBody })
      return noBody ? 1 : 0
    } catch {
      // a header HTTP/2 cannot carry: the stream is reset rather than answered wrongly
      this.destroy()
      return 1
    }
  }

  onBody (chunk: Buffer): void {
    if (this.stream.destroyed || !this.headSent) return
    this.ok = this.stream.write(chunk)
  }

  onMessageComplete (): void {
    if (!this.headSent) return // an interim (1xx) answer
    this.done = true
    if (!this.stream.destroyed && !this.stream.writableEnded) this.stream.end()
  }

  onExecute (_ret: number | ParseError): void {}
}
