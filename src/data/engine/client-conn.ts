/**
 * @module engine/client-conn
 * One client connection: its llhttp request parser (reading the socket in C++ where it can), the
 * exchanges it parsed in order, and the rules of the connection itself. Requests are answered one
 * after another: a pipelined request waits, reading paused, until the one before it is answered, so
 * unsafe methods are never forwarded in parallel (RFC 9112 §9.3.2) and answers keep their order.
 */
import type { Socket } from 'node:net'
import type { TLSSocket } from 'node:tls'
import type { UpstreamConn } from '../upstream/upstream-pool.js'
import { ProxyError, type ProblemCode } from '../../shared/errors.js'
import { LINGER_MS } from '../../shared/linger.js'
import type { Engine } from './engine.js'
import { Exchange, HOLD_CLOSING, HOLD_PIPELINE } from './exchange.js'
import { consumeSocket, createParser, methodNames, readStart, readStop, refusedTrailer, reinitialize, releaseParser, type Parser, type ParseError, type ParserCallbacks } from '../http/llhttp.js'
import { clientAddress } from '../policy/proxy-protocol.js'

const BEGAN = 1
const COMPLETED = 2
const IN_READ = 4
/** the last message completed in this read ended with Content-Length body bytes (not with a LF) */
const LENGTH_END = 8
const POST = Buffer.from('POST', 'latin1')
/** RFC 9110 §5.6.2 tchar */
const TCHAR = new Uint8Array(256)
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") TCHAR[c.charCodeAt(0)] = 1

/** a client socket's connection, for the listeners below */
const CONN = Symbol('claylb.conn')
type ConnSocket = Socket & { [CONN]: ClientConn }

// the socket's listeners, shared by every connection (`this` is the socket, as node:http's are):
// no function bound per connection
function socketData (this: ConnSocket, d: Buffer): void { this[CONN].onData(d) }
function socketEnd (this: ConnSocket): void { this[CONN].onEnd() }
function socketError (this: ConnSocket): void { this[CONN].onError() }
function socketClose (this: ConnSocket): void { this[CONN].onClose() }
function socketDrain (this: ConnSocket): void { this[CONN].onDrain() }

export class ClientConn implements ParserCallbacks {
  readonly socket: Socket
  readonly engine: Engine
  readonly remoteAddress: string
  /** the peer is one of trustedProxies: decided once, when it connected */
  readonly trusted: boolean
  readonly http2 = false
  private readonly parser: Parser
  private consumed: boolean
  /** the exchange being answered */
  active: Exchange | null = null
  /** the exchange whose body the parser is reading */
  private receiving: Exchange | null = null
  /** parsed, waiting for `active` to be answered */
  private queue: Exchange[] = []
  /** no further request is read: the connection closes once the answers before are written */
  closing = false
  /** reasons reading is paused (HOLD_* bits) */
  private holds = 0
  /** coarse clock time the current head began (0: not in a head), for the headers timeout */
  headStart = 0
  /** coarse clock time the connection became idle (0: busy) */
  idleSince: number
  /** coarse clock time a close began (linger), 0 when open */
  closingSince = 0
  /** the client sent its FIN (half-close): answer what was asked, then close */
  private clientEnded = false
  /** after an upgrade request the parser let go of the socket: bytes are the tunnel's */
  private upgrading = false
  tunnelled = false
  /** what happened in the current read (BEGAN, COMPLETED bits), for the extension-method re-parse */
  private readFlags = 0
  /** an extension method's name while its head is re-parsed under POST's */
  private pendingMethod = ''
  /**
   * The body being read: `bodyHeard` is set by every chunk and cleared by the sweep, which notes when
   * it last saw it set (`bodyHeardAt`) for the exchange `bodyWatched`, so a chunk costs a field write,
   * never a clock read or a timer (timeouts.clientBodyMs).
   */
  private bodyHeard = false
  private bodyHeardAt = 0
  private bodyWatched: Exchange | null = null
  /** an upstream connection corked until the end of the current read */
  private corked: UpstreamConn | null = null

  constructor (engine: Engine, socket: Socket, now: number) {
    this.engine = engine
    this.socket = socket
    this.remoteAddress = engine.proxyProtocol ? clientAddress(socket) : socket.remoteAddress ?? ''
    this.trusted = engine.routing.trusted.trusts(this.remoteAddress)
    this.idleSince = now
    this.parser = createParser('request', engine.o.maxHeaderBytes, this)
    this.consumed = consumeSocket(this.parser, socket)
    ;(socket as ConnSocket)[CONN] = this
    // in consume mode this runs only after an upgrade; it also keeps the stream flowing so 'end' is seen
    socket.on('data', socketData)
    socket.on('end', socketEnd)
    socket.on('error', socketError)
    socket.on('close', socketClose)
    socket.on('drain', socketDrain)
  }

  /**
   * The listener read a PROXY header first (listen.proxyProtocol): the bytes it read past it are this
   * connection's first, and the socket, paused while the header was read, flows from now on.
   */
  afterProxyHeader (head: Buffer | undefined): void {
    if (head !== undefined) this.onData(head)
    if (!this.socket.destroyed) this.socket.resume()
  }

  onData (d: Buffer): void {
    if (this.upgrading) {
      this.engine.tunnelData(this, d)
      return
    }
    this.readFlags |= IN_READ
    const ret = this.parser.execute(d)
    if (typeof ret !== 'number') this.onParseError(ret, d)
    else if (this.upgrading) this.takeOver(d, ret)
    this.endOfRead()
  }

  onMessageBegin (): void {
    this.headStart = this.engine.clock
    this.idleSince = 0
    this.readFlags |= BEGAN
  }

  // ---- parser callbacks ----

  onHeadersComplete (major: number, minor: number, headers: string[], method: number | undefined,
    url: string, _status: number | undefined, _message: string | undefined, upgrade: boolean, keepAlive: boolean): number {
    this.headStart = 0
    // called from inside a read (consume mode: onExecute ends it; data mode: onData)
    this.readFlags |= IN_READ
    if (this.closing) return 0 // pipelined behind an answer that closes the connection: never forwarded
    const ex = new Exchange(this)
    let name = methodNames()[method ?? -1] ?? ''
    if (this.pendingMethod !== '') {
      name = this.pendingMethod
      this.pendingMethod = ''
    }
    ex.fromHead(major, minor, headers, name, url, keepAlive)
    if (!upgrade) ex.upgradeTo = ''
    else if (ex.method !== 'CONNECT') {
      this.upgrading = true
      ex.closeAfter = true
      // WebSocket is tunnelled after the same checks as any request; any other upgrade is only an offer
      // (RFC 9110 §7.8): the plain request is answered, then the connection closes. Its body would
      // follow the upgrade offer, where no parser reads it: 501.
      if (ex.method !== 'GET' || ex.upgradeTo.toLowerCase() !== 'websocket') {
        if (ex.refusal === null && (ex.chunkedIn || ex.contentLength > 0)) ex.refuse('CLAYLB_NOT_IMPLEMENTED', `upgrade to ${ex.upgradeTo} is not supported`)
        ex.upgradeTo = ''
      }
    }
    this.receiving = ex
    if (ex.refusal !== null || !keepAlive || upgrade) this.closing = true
    this.enqueue(ex)
    return 0
  }

  onBody (chunk: Buffer): void {
    this.bodyHeard = true
    if (this.receiving !== null) this.receiving.onClientBody(chunk)
  }

  onMessageComplete (): void {
    const ex = this.receiving
    this.readFlags = (this.readFlags | COMPLETED) & ~LENGTH_END
    if (ex !== null && ex.contentLength > 0) this.readFlags |= LENGTH_END
    this.receiving = null
    if (ex !== null) ex.onClientBodyEnd()
    if (this.closing && !this.upgrading) this.hold(HOLD_CLOSING)
  }

  /** after each read the parser consumed itself (consume mode) */
  onExecute (ret: number | ParseError): void {
    if (typeof ret !== 'number') this.onParseError(ret, null)
    else if (this.upgrading && !this.tunnelled && this.consumed) this.takeOver(this.parser.getCurrentBuffer(), ret)
    this.endOfRead()
  }

  /**
   * An upstream socket the active exchange wrote its head to: uncorked at the end of this read (a
   * body that came with the head goes in the same write), at once when no read is being parsed.
   */
  uncorkLater (c: UpstreamConn): void {
    if ((this.readFlags & IN_READ) === 0) {
      c.uncork()
      return
    }
    if (this.corked !== null && this.corked !== c) this.corked.uncork()
    this.corked = c
  }

  private endOfRead (): void {
    this.readFlags = 0
    const c = this.corked
    if (c !== null) {
      this.corked = null
      c.uncork()
    }
  }

  /** the parser stopped at an upgrade: the rest of the bytes belong to the tunnel (or are dropped) */
  private takeOver (d: Buffer, ret: number): void {
    if (this.consumed) {
      this.consumed = false
      this.parser.unconsume()
    }
    this.unhold(0xff)
    if (ret < d.length) this.engine.tunnelData(this, d.subarray(ret))
  }

  /**
   * llhttp knows a fixed list of methods; RFC 9110 §9.1 allows any token (nginx forwards `FOO`). The
   * request's method is swapped for a known one of the same framing rules (POST), the head re-parsed
   * from there, and the real name put back in onHeadersComplete. Where the request starts: a request
   * that began in this read with no message completed before it in the same read starts at the
   * buffer's first byte (after blank lines); one pipelined behind a message completed in this read
   * starts after that message's last LF: llhttp stops inside the token (`at`), so the token is the run
   * of token characters before `at` back to that LF. A message before it that ended with body bytes
   * (a Content-Length body, whose own bytes may hold a LF and tokens) gives no such boundary: that
   * one stays a 400.
   */
  private extensionMethod (d: Buffer, at: number): boolean {
    if ((this.readFlags & BEGAN) === 0 || this.receiving !== null || this.pendingMethod !== '') return false
    let i = 0
    if ((this.readFlags & COMPLETED) === 0) {
      while (i < d.length && (d[i] === 13 || d[i] === 10)) i++
    } else {
      if ((this.readFlags & LENGTH_END) !== 0) return false
      i = Math.min(at, d.length)
      while (i > 0 && at - i < 32 && TCHAR[d[i - 1]!] === 1) i--
      if (i === 0 || d[i - 1] !== 10) return false
    }
    const sp = d.indexOf(32, i)
    if (sp <= i || sp - i > 32) return false
    for (let j = i; j < sp; j++) if (TCHAR[d[j]!] !== 1) return false
    this.pendingMethod = d.toString('latin1', i, sp)
    reinitialize(this.parser, 'request', this.engine.o.maxHeaderBytes)
    this.readFlags &= IN_READ
    const again = Buffer.concat([POST, d.subarray(sp)])
    const ret = this.parser.execute(again)
    if (typeof ret !== 'number') this.onParseError(ret, again)
    else if (this.upgrading) this.takeOver(again, ret)
    return true
  }

  private onParseError (err: ParseError, d: Buffer | null): void {
    if (err.code === 'HPE_INVALID_METHOD' && !this.closing && this.extensionMethod(d ?? this.parser.getCurrentBuffer(), err.bytesParsed)) return
    this.pendingMethod = ''
    if (refusedTrailer(this.parser, err)) {
      // the request was all in: it is answered, then the connection closes (the parser reads no more)
      this.closing = true
      this.onMessageComplete()
      return
    }
    if (this.closing && this.receiving === null) return // the rest was not going to be read anyway
    const code: ProblemCode = err.code === 'HPE_HEADER_OVERFLOW' ? 'CLAYLB_HEADERS_TOO_LARGE' : 'CLAYLB_BAD_REQUEST'
    const detail = code === 'CLAYLB_HEADERS_TOO_LARGE' ? `request headers exceed ${this.engine.o.maxHeaderBytes} bytes`
      : `malformed request: ${err.reason ?? err.message}`
    if (this.refuseBody(new ProxyError(code, detail))) return
    // a broken head: answered in its turn, after the answers before it
    const ex = new Exchange(this)
    ex.method = ''
    ex.path = ''
    ex.closeAfter = true
    ex.bodyDone = true
    ex.refusal = new ProxyError(code, detail)
    this.enqueue(ex)
  }

  /**
   * Stop reading for good; the request whose body was being read (if any) is refused with `err` (in
   * its turn if it waits) and the connection closes after it: true when there was one.
   */
  private refuseBody (err: ProxyError): boolean {
    this.closing = true
    this.hold(HOLD_CLOSING)
    const broken = this.receiving
    this.receiving = null
    if (broken === null) return false
    // a request that already has its answer gets no second one
    if (broken.finished) {
      this.closeSoon()
      return true
    }
    broken.closeAfter = true
    if (broken.active) broken.fail(err)
    else broken.refusal = err
    return true
  }

  private enqueue (ex: Exchange): void {
    if (this.active === null) {
      this.active = ex
      ex.activate()
    } else {
      this.queue.push(ex)
      this.hold(HOLD_PIPELINE)
    }
  }

  /** The active exchange finished: the next one's turn, or the connection closes or idles. */
  exchangeDone (ex: Exchange): void {
    if (this.tunnelled) {
      this.active = null
      return
    }
    if (ex !== this.active) {
      const i = this.queue.indexOf(ex)
      if (i >= 0) this.queue.splice(i, 1)
      return
    }
    if (ex.closeAfter) {
      // nothing after this answer can be read as a request: those parsed already are dropped unanswered
      this.closing = true
      for (const q of this.queue) q.finished = true
      this.queue.length = 0
    }
    const next = this.queue.shift()
    this.active = next ?? null
    if (next !== undefined) {
      next.activate()
      return
    }
    if (this.closing || this.clientEnded || this.engine.draining) {
      this.closeSoon()
      return
    }
    this.idleSince = this.engine.clock
    this.unhold(HOLD_PIPELINE)
  }

  // ---- reading held (backpressure, pipelining) ----

  hold (bit: number): void {
    if (this.holds === 0 && !this.socket.destroyed) {
      if (this.consumed) readStop(this.socket)
      else this.socket.pause()
    }
    this.holds |= bit
  }

  unhold (bit: number): void {
    if ((this.holds & bit) === 0) return
    this.holds &= ~bit
    if (this.holds === 0 && !this.socket.destroyed) {
      if (this.consumed) readStart(this.socket)
      else this.socket.resume()
    }
  }

  // ---- the socket ----

  onDrain (): void {
    this.active?.onClientDrain()
  }

  onEnd (): void {
    this.clientEnded = true
    if (this.closingSince !== 0) {
      this.socket.destroy() // the lingering close is over: the client has sent all it will
      return
    }
    // a client that hangs up has given up on what it asked (Node's server does the same): 499
    this.receiving = null
    for (const q of this.queue) q.finished = true
    this.queue.length = 0
    const ex = this.active
    if (ex !== null && !ex.finished) ex.clientClosed()
    this.closeSoon()
  }

  onError (): void {
    this.socket.destroy()
  }

  onClose (): void {
    this.engine.forget(this)
    if (this.consumed) {
      this.consumed = false
      try { this.parser.unconsume() } catch { /* handle already gone */ }
    }
    releaseParser(this.parser)
    for (const q of this.queue) q.finished = true
    this.queue.length = 0
    const ex = this.active
    this.active = null
    if (ex !== null && !ex.finished) ex.clientClosed()
  }

  /**
   * Close after what was written: a FIN, then (nginx's lingering close) whatever still comes is read
   * and dropped until the client ends its side or LINGER_MS pass, so the client reads the answer
   * instead of a RST. The engine's sweep destroys it at the end of the linger.
   */
  closeSoon (): void {
    if (this.closingSince !== 0 || this.socket.destroyed) return
    this.closing = true
    this.closingSince = this.engine.clock || 1
    this.socket.end()
    if (this.clientEnded) {
      this.socket.destroySoon()
      return
    }
    this.upgrading = true // every further byte is dropped (tunnelData finds no tunnel)
    this.unhold(0xff)
  }

  /** the engine's sweep: closes what overstayed a limit (head, request body, keep-alive idle) */
  sweep (now: number, headersMs: number, idleMs: number, bodyMs: number): void {
    if (this.closingSince !== 0) {
      if (now - this.closingSince > LINGER_MS) this.socket.destroy()
      return
    }
    if (this.tunnelled) return
    if (this.headStart !== 0 && now - this.headStart > headersMs) {
      this.headStart = 0
      this.onTimeout()
      return
    }
    if (this.receiving !== null) this.sweepBody(now, bodyMs)
    else this.bodyWatched = null
    if (this.idleSince !== 0 && this.active === null && now - this.idleSince > idleMs) this.socket.destroy()
  }

  /**
   * A request body that has not moved for `bodyMs` is the client's fault: 408, whatever the upstream
   * did (nothing, when the body was small enough to be read before one was chosen). Not while reading
   * is held: then the proxy (a request before it, an upstream's backpressure) is the one waiting.
   */
  private sweepBody (now: number, bodyMs: number): void {
    const ex = this.receiving!
    if (this.holds !== 0 || this.bodyHeard || this.bodyWatched !== ex) {
      this.bodyHeard = false
      this.bodyWatched = ex
      this.bodyHeardAt = now
    } else if (now - this.bodyHeardAt > bodyMs) {
      this.refuseBody(new ProxyError('CLAYLB_REQUEST_TIMEOUT', `no byte of the request body for ${this.engine.o.clientBodyMs} ms`))
    }
  }

  private onTimeout (): void {
    this.closing = true
    this.hold(HOLD_CLOSING)
    if (this.active === null) {
      const ex = new Exchange(this)
      ex.closeAfter = true
      ex.bodyDone = true
      ex.refusal = new ProxyError('CLAYLB_REQUEST_TIMEOUT', 'request not received in time')
      this.enqueue(ex)
    }
  }

  tlsSocket (): TLSSocket | null {
    return this.engine.proto === 'https' ? this.socket as TLSSocket : null
  }

  /** the active exchange's answer is the connection's last one */
  lastAnswer (): boolean {
    return (this.closing && this.queue.length === 0) || this.engine.draining
  }

  /** Shutdown: close now when nothing is being answered. */
  closeIfIdle (): void {
    // a WebSocket tunnel is not idle: it is closed with everything else after the drain (closeAll)
    if (this.active === null && this.receiving === null && !this.tunnelled) this.closeSoon()
  }

  /** the tunnel took the socket: stop parsing for good */
  detach (): void {
    this.tunnelled = true
    this.socket.removeListener('data', socketData)
  }
}
