/**
 * @module engine/upstream-pool
 * A keep-alive pool of raw upstream sockets for one host, each with its own response parser for its
 * whole life. A connection is reused only after its request was written whole and a keep-alive answer
 * read whole; idle ones are closed by a sweep before the upstream's own idle timeout (Node's 5 s) can
 * race a reuse, and a request that must not run twice takes only a connection idle for a short while
 * (acquire). The socket's events are bound once per connection, never per request.
 */
import net, { type Socket } from 'node:net'
import tls, { type TLSSocket } from 'node:tls'
import type { UpstreamTls } from '../../shared/tls/certificates.js'
import type { DeadlineEntry, Deadlines } from '../http/deadlines.js'
import { BROKEN, consumeSocket, createParser, NO_BODY, readStart, readStop, refusedTrailer, type Parser, type ParseError, type ParserCallbacks } from '../http/llhttp.js'

/** What a connection reports to the request it serves (the exchange implements it). */
export interface UpstreamUser {
  onUpstreamConnected (c: UpstreamConn): void
  /**
   * returns NO_BODY to tell the parser the answer has no body (a HEAD request), or what `c.broken()`
   * returns when the answer cannot be used
   */
  onResponseHead (c: UpstreamConn, status: number, message: string, headers: string[], upgrade: boolean): number
  onResponseBody (c: UpstreamConn, chunk: Buffer): void
  onResponseComplete (c: UpstreamConn): void
  /** the connection failed or closed before the answer was complete; `code`: ECONNRESET, EPIPE, EOF, a parse error's code… */
  onUpstreamError (c: UpstreamConn, code: string): void
  onUpstreamDrain (c: UpstreamConn): void
  /** the try's connect or header timeout passed */
  onTryTimeout (c: UpstreamConn): void
  /** the answer started, then the upstream sent nothing for the body-idle time */
  onBodyTimeout (c: UpstreamConn): void
}

// Node's http.Server closes idle keep-alive sockets after 5 s by default; staying under it keeps a
// reused socket from racing the upstream's close (timeouts.upstreamKeepAliveMs)
export const KEEP_ALIVE_MS = 4000
/**
 * A request that must not run twice (not idempotent, or keyed) reuses only a connection idle for
 * less than this share of the keep-alive time: an upstream that closes idle connections sooner than
 * claylb thinks (gunicorn's 2 s, a tuned Node server) closes them at its own timeout, and a request
 * written at that moment meets the close after its bytes left (an unknown outcome: a 502).
 */
export const SAFE_REUSE_SHARE = 4
/** a request up to this many bytes, written at once, is one buffer of an AF_UNIX socket (Linux) */
export const ONE_BUFFER_BYTES = 16 * 1024

/** a request waiting for a connection of a host at its pool's maxConnectionsPerHost (an exchange) */
export interface ConnectionWaiter {
  /** a connection was released or closed: try this host again */
  onConnectionFree (): void
}

/** one waiter's turn, run on the next tick so it never starts inside the releasing request's callbacks */
function wakeOne (pool: UpstreamPool): void {
  pool.waiters.shift()?.onConnectionFree()
}

export interface PoolOptions {
  connectTimeoutMs: number
  maxHeaderBytes: number
  /** for https:// upstreams; undefined: Node's defaults */
  tls?: UpstreamTls | undefined
}

export class UpstreamConn implements ParserCallbacks, DeadlineEntry {
  readonly socket: Socket
  readonly parser: Parser
  readonly pool: UpstreamPool
  user: UpstreamUser | null = null
  connected = false
  /** has served a request before the current one (a pooled keep-alive socket) */
  reused = false
  /** the current try's first write has not been handed to the kernel yet */
  unflushed = true
  /**
   * The kernel refused the current try's first write at once (the peer had closed or reset the
   * connection): not one byte of the try left, so nothing of it reached the upstream.
   */
  refused = false
  /**
   * The exchange's claim that the try's whole request (head and body, ≤ ONE_BUFFER_BYTES) is in its
   * first write; uncork() keeps it only when the kernel took that write whole at once.
   */
  wholeInOne = false
  /** bytes of the current answer arrived */
  gotBytes = false
  /** the last answer allows reuse */
  keepAlive = true
  /**
   * The answer's head came and its body is streaming: the sweep watches it for silence. `heard` is
   * set by every chunk and cleared by the sweep, which notes when it last saw it set (`heardAt`), so
   * a chunk costs a field write, never a clock read or a timer.
   */
  streaming = false
  heard = false
  heardAt = 0
  /** the current answer is a 1xx (its message-complete is not the end) */
  private interim = false
  /** an answer was found unusable (see broken()): nothing more is read from this connection */
  private isBroken = false
  private consumed = false
  /** reading stopped for backpressure (the client reads slower than this upstream sends) */
  paused = false
  private errorCode = ''
  private tunnelTo: Socket | null = null
  private readonly onDataBound: (d: Buffer) => void
  idleSince = 0
  /** idle list links */
  idleIndex = -1
  // DeadlineEntry (connect or header timeout of the try)
  deadlineAt = 0
  prevDeadline: DeadlineEntry | null = null
  nextDeadline: DeadlineEntry | null = null
  /** the deadline list (connect or answer head) it is in, if any */
  timedBy: Deadlines | null = null

  constructor (pool: UpstreamPool) {
    this.pool = pool
    this.socket = pool.socketPath !== undefined ? net.connect(pool.socketPath) : pool.secure ? pool.connectTls() : net.connect(pool.port, pool.hostname)
    this.parser = createParser('response', pool.o.maxHeaderBytes, this)
    this.socket.setNoDelay(true)
    // over TLS the connection is usable (and "connected" for retries and outcomes) once the handshake passed
    this.socket.on(pool.secure ? 'secureConnect' : 'connect', this.onConnect.bind(this))
    this.socket.on('error', this.onSocketError.bind(this))
    this.socket.on('end', this.onEnd.bind(this))
    this.socket.on('close', this.onClose.bind(this))
    this.socket.on('drain', this.onDrain.bind(this))
    // in consume mode the parser reads in C++ and this never runs; it keeps the stream flowing so 'end' is seen
    this.onDataBound = this.onData.bind(this)
    this.socket.on('data', this.onDataBound)
  }

  private onConnect (): void {
    this.connected = true
    this.consumed = consumeSocket(this.parser, this.socket)
    this.user?.onUpstreamConnected(this)
  }

  onDeadline (): void {
    this.timedBy = null
    this.user?.onTryTimeout(this)
  }

  private onData (d: Buffer): void {
    const ret = this.parser.execute(d)
    if (typeof ret !== 'number' || this.isBroken) this.onExecute(ret)
    else if (this.tunnelTo !== null) this.takeOver(d, ret)
  }

  /**
   * The upstream answered 101: once the parser has stopped after the head, this socket and the
   * client's are piped to each other (what the client sent meanwhile goes first).
   */
  upgradeTo (client: Socket, pending: Buffer[]): void {
    this.tunnelTo = client
    this.user = null
    this.pool.forget(this)
    for (const b of pending) this.socket.write(b)
  }

  private takeOver (d: Buffer, ret: number): void {
    const client = this.tunnelTo!
    this.tunnelTo = null
    if (this.consumed) {
      this.consumed = false
      this.parser.unconsume()
    }
    this.socket.removeListener('data', this.onDataBound)
    if (ret < d.length) client.write(d.subarray(ret))
    client.pipe(this.socket)
    this.socket.pipe(client)
    client.resume()
    this.socket.resume()
  }

  private onSocketError (err: NodeJS.ErrnoException): void {
    if (this.errorCode === '') this.errorCode = err.code ?? 'ECONNRESET'
  }

  private onEnd (): void {
    // a close-delimited answer ends here
    const ret = this.parser.finish()
    if (ret !== undefined && typeof ret !== 'number') this.errorCode ||= ret.code
    this.socket.destroy()
  }

  private onClose (): void {
    // closed by its upstream while idle in the pool (the sweep and pool.close take it out first)
    if (this.idleIndex >= 0 && !this.pool.closed) this.pool.closesIdle = true
    this.pool.forget(this)
    this.parser.close()
    const u = this.user
    this.user = null
    if (u !== null) u.onUpstreamError(this, this.errorCode || (this.connected ? 'EOF' : 'ECONNREFUSED'))
  }

  private onDrain (): void {
    this.user?.onUpstreamDrain(this)
  }

  // ---- parser callbacks ----

  onHeadersComplete (_maj: number, _min: number, headers: string[], _method: number | undefined,
    _url: string, statusCode: number | undefined, statusMessage: string | undefined, upgrade: boolean, keepAlive: boolean): number {
    if (this.isBroken) return BROKEN
    this.gotBytes = true
    const status = statusCode ?? 0
    const u = this.user
    // an answer no request is waiting for (the connection is idle, or its request gave up on it) is
    // not the answer to the next request sent on it: the connection ends here
    if (u === null) return this.broken('CLAYLB_UNSOLICITED_ANSWER')
    // RFC 9110 §15: a status is 100–599; any other is no answer at all, and what follows it cannot be framed
    if (status < 100 || status > 599) return this.broken('CLAYLB_INVALID_STATUS')
    this.interim = status < 200 && status !== 101
    if (!this.interim && status !== 101) {
      this.streaming = true
      this.heard = true
    }
    if (!this.interim) this.keepAlive = keepAlive
    const r = u.onResponseHead(this, status, statusMessage ?? '', headers, upgrade)
    // RFC 9112 §6.3: a 1xx ends at its blank line, whatever length its headers declare
    return this.interim && r !== BROKEN ? NO_BODY : r
  }

  /**
   * The answer in the parser cannot be used (`code` says why, for the log): the parser stops with an
   * error, onExecute destroys the connection (never reused) and the user learns it as a failed try.
   * Node ignores a callback's error once llhttp saw an upgrade (a 101), so nothing more of this
   * connection is handed on either way.
   */
  broken (code: string): number {
    if (this.errorCode === '') this.errorCode = code
    this.isBroken = true
    this.keepAlive = false
    return BROKEN
  }

  onBody (chunk: Buffer): void {
    this.heard = true
    if (!this.isBroken) this.user?.onResponseBody(this, chunk)
  }

  onMessageComplete (): void {
    if (this.isBroken) return
    if (this.interim) {
      this.interim = false
      return
    }
    this.streaming = false
    this.user?.onResponseComplete(this)
  }

  onExecute (ret: number | ParseError): void {
    if (typeof ret === 'number' && !this.isBroken) {
      if (this.tunnelTo !== null && this.consumed) this.takeOver(this.parser.getCurrentBuffer(), ret)
      return
    }
    this.keepAlive = false
    // the answer was all in: it ends here, then the connection closes (done() finds keepAlive false)
    if (typeof ret !== 'number' && refusedTrailer(this.parser, ret)) this.onMessageComplete()
    // a head found broken (see broken()) keeps its own reason
    if (this.errorCode === '') this.errorCode = typeof ret === 'number' ? 'HPE_ERROR' : ret.code || 'HPE_ERROR'
    this.socket.destroy()
  }

  // ---- for the exchange ----

  write (data: string | Buffer): boolean {
    return typeof data === 'string' ? this.socket.write(data, 'latin1') : this.socket.write(data)
  }

  /**
   * End the cork of the try's request head: its bytes go to the kernel now. libuv tries the write at
   * once, so a write the kernel refuses (EPIPE: the peer had closed; ECONNRESET: it had reset) errors
   * the stream inside this call; a write it took, even in part, does not (a later failure comes
   * from the event loop). That is the proof `refused` records.
   */
  uncork (): void {
    const s = this.socket
    s.uncork()
    if (this.unflushed) {
      this.unflushed = false
      this.refused = s.errored !== null
      if (s.writableLength !== 0) this.wholeInOne = false
    }
  }

  /**
   * A reset that proves the try's request unread — for claylb's own workers only. Linux reports
   * ECONNRESET on an AF_UNIX socket only when its peer closed with bytes still queued unread; a
   * worker is claylb's runtime, a Node server that reads its socket 64 KiB at a time, so it takes
   * a request that arrived whole in one buffer (wholeInOne) whole or not at all. A reset after such
   * a write: the worker never read a byte of it (a process killed before it read). Any other upstream
   * may read a few bytes at a time: its reset proves nothing.
   */
  /**
   * The upstream answered, unusably: a head arrived, or bytes it sent broke the parser (a status outside
   * 100–599, an unasked 101, a framing error). It read the request and acted on it as it chose.
   */
  get answeredBadly (): boolean {
    return this.gotBytes || this.isBroken || this.errorCode.startsWith('HPE_')
  }

  resetUnread (code: string): boolean {
    return code === 'ECONNRESET' && this.wholeInOne && this.pool.socketPath !== undefined
  }

  pauseReading (): void {
    this.paused = true
    if (this.consumed) readStop(this.socket)
    else this.socket.pause()
  }

  resumeReading (): void {
    if (!this.paused) return
    this.paused = false
    this.heard = true // the silence starts now, not while the client was not reading
    if (this.consumed) readStart(this.socket)
    else this.socket.resume()
  }

  /** Give the connection back: reused when the answer allows it, else closed. */
  done (reusable: boolean): void {
    this.user = null
    this.gotBytes = false
    this.streaming = false
    if (reusable && this.keepAlive && !this.socket.destroyed && this.socket.writable) this.pool.release(this)
    else this.destroy()
  }

  destroy (): void {
    this.user = null
    this.keepAlive = false
    this.socket.destroy()
  }
}

/** One host's connections. */
export class UpstreamPool {
  readonly socketPath: string | undefined
  readonly hostname: string
  readonly port: number
  /** the authority to send as Host when a client (HTTP/1.0) sent none */
  readonly authority: string
  /** an https:// upstream */
  readonly secure: boolean
  /** the last TLS session, offered on the next connection (a resumed handshake is much cheaper) */
  private session: Buffer | undefined
  /** idle connections, most recently used last (reused first: its peer is least likely to have closed it) */
  private idle: UpstreamConn[] = []
  readonly all = new Set<UpstreamConn>()
  closed = false
  /** requests waiting for a connection, in arrival order (only a pool with maxConnectionsPerHost has any) */
  waiters: ConnectionWaiter[] = []
  /**
   * The upstream has closed a connection while it was idle here: its keep-alive is shorter than
   * claylb's, or it closes connections after answering, so a reused connection may meet that close
   * at any moment. A request that must not run twice gets a new connection from then on.
   */
  closesIdle = false

  constructor (url: string, socketPath: string | undefined, readonly o: PoolOptions) {
    this.socketPath = socketPath
    if (socketPath !== undefined) {
      this.hostname = 'localhost'
      this.port = 0
      this.authority = 'localhost'
    } else {
      const u = new URL(url)
      this.hostname = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname
      this.secure = u.protocol === 'https:'
      this.port = u.port === '' ? (this.secure ? 443 : 80) : Number(u.port)
      this.authority = u.host
      return
    }
    this.secure = false
  }

  connectTls (): TLSSocket {
    const t = this.o.tls
    const servername = t?.servername ?? (net.isIP(this.hostname) === 0 ? this.hostname : undefined)
    const s = tls.connect({
      host: this.hostname,
      port: this.port,
      ...(servername !== undefined ? { servername } : {}),
      ...(t !== undefined ? { secureContext: t.context, rejectUnauthorized: t.rejectUnauthorized } : {}),
      ...(this.session !== undefined ? { session: this.session } : {}),
      ALPNProtocols: ['http/1.1'],
    })
    s.on('session', (session: Buffer) => { this.session = session })
    return s
  }

  /**
   * A connection for one try: an idle one, else a new one (its user learns when it is connected).
   * `safeIdleMs` (-1 for an idempotent request): a request that must not run twice reuses only a
   * connection idle for less than this, and none once the upstream was seen closing idle ones
   * (closesIdle); the others stay for idempotent requests.
   */
  acquire (user: UpstreamUser, safeIdleMs: number, maxConns = Infinity): UpstreamConn {
    let c = this.idle.pop()
    while (c !== undefined && (c.socket.destroyed || !c.socket.writable)) c = this.idle.pop()
    if (c !== undefined && safeIdleMs >= 0 && (this.closesIdle || Date.now() - c.idleSince >= safeIdleMs)) {
      // the most recently used is the youngest: every idle one is older, so a new connection
      this.idle.push(c)
      c = undefined
      // at the pool's maxConnectionsPerHost: the oldest idle one makes room (closed, out of the count now)
      if (this.all.size >= maxConns) {
        const old = this.idle.shift()!
        old.idleIndex = -1
        this.all.delete(old)
        old.socket.destroy()
      }
    }
    if (c !== undefined) {
      c.idleIndex = -1
      c.reused = true
      c.unflushed = true
      c.refused = false
      c.wholeInOne = false
      c.user = user
      c.resumeReading()
      return c
    }
    c = new UpstreamConn(this)
    this.all.add(c)
    c.user = user
    if (this.closed) c.socket.destroy()
    return c
  }

  release (c: UpstreamConn): void {
    if (this.closed) {
      c.socket.destroy()
      return
    }
    c.idleSince = Date.now()
    c.idleIndex = this.idle.length
    c.resumeReading()
    // an idle socket still reads (to see the upstream's FIN or RST), but nothing is expected
    this.idle.push(c)
    if (this.waiters.length > 0) process.nextTick(wakeOne, this)
  }

  /** a new try may have a connection under `max` of them: an idle one, or room for one more */
  hasRoom (max: number): boolean {
    if (this.all.size < max) return true
    const idle = this.idle
    for (let i = idle.length - 1; i >= 0; i--) if (!idle[i]!.socket.destroyed && idle[i]!.socket.writable) return true
    return false
  }

  forget (c: UpstreamConn): void {
    if (this.all.delete(c) && this.waiters.length > 0) process.nextTick(wakeOne, this)
    if (c.idleIndex >= 0) {
      const i = this.idle.indexOf(c)
      if (i >= 0) this.idle.splice(i, 1)
      c.idleIndex = -1
    }
  }

  /**
   * close connections idle longer than `maxIdleMs` (oldest are first in the list); the engine passes
   * the keep-alive time less its sweep period, so no connection is reused past the keep-alive time
   */
  sweepIdle (now: number, maxIdleMs: number): void {
    while (this.idle.length > 0 && now - this.idle[0]!.idleSince > maxIdleMs) {
      const c = this.idle.shift()!
      c.idleIndex = -1
      c.socket.destroy()
    }
  }

  /**
   * The sweep's body-idle check: an answer whose body streams, unpaused (a client that does not read
   * is not the upstream's silence), with no chunk since `idleMs` ago, is cut.
   */
  sweepStreaming (now: number, idleMs: number): void {
    for (const c of this.all) {
      if (!c.streaming || c.user === null || c.paused) continue
      if (c.heard) {
        c.heard = false
        c.heardAt = now
      } else if (now - c.heardAt > idleMs) {
        c.streaming = false
        c.user.onBodyTimeout(c)
      }
    }
  }


  close (): void {
    this.closed = true
    for (const c of this.idle) c.socket.destroy()
    this.idle = []
  }

  /** every connection, busy ones too (shutdown after the drain deadline) */
  destroyAll (): void {
    this.close()
    for (const c of this.all) c.socket.destroy()
  }
}

