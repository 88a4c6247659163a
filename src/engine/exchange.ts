/**
 * @module engine/exchange
 * One client request and its tries upstream, on raw sockets: the object is created where the request
 * head is parsed and is the only thing passed along. Its state is plain fields; the upstream
 * connection of the current try (engine/upstream-pool) calls back into it, so there is no closure or
 * promise per request; what belongs to one try is in an UpstreamTry (engine/upstream-try), made anew
 * for each. States, in order: queued (pipelined behind another) → active (counted in
 * flight, under the request deadline) → a try: connecting → request written → answer streaming →
 * finished; a failed try before the answer started may be retried on another host.
 */
import { STATUS_CODES } from 'node:http'
import type { Host } from '../upstream/host.js'
import { ProxyError, problemBody, PROBLEMS, type ProblemCode } from '../errors.js'
import type { DeadlineEntry } from '../proxy/deadlines.js'
import { isIdempotentMethod, validHost, withoutUnderscores } from '../proxy/headers.js'
import { toOriginForm, type FinishedRequest } from '../proxy/proxy.js'
import { resendable, unsentTry, type RetryReason, type TryOutcome } from '../proxy/retry-policy.js'
import type { Engine } from './engine.js'
import { requestHead, responseHead, type RequestHeadFacts, type ResponseHeadFacts } from './head.js'
import { misspelledMethod, NO_BODY } from './llhttp.js'
import { ONE_BUFFER_BYTES, SAFE_REUSE_SHARE, type UpstreamConn, type UpstreamUser } from './upstream-pool.js'
import { UpstreamTry } from './upstream-try.js'
import type { Route } from '../routing/route-table.js'
import type { RoutePool } from '../routing/route-pool.js'
import type { KeyedExchange, KeyedRequest } from '../proxy/idempotency-gate.js'
import type { Claim } from '../idempotency/core.js'
import { FENCE_HEADER, ID_HEADER } from '../idempotency/decision.js'
import type { StoredResponse } from '../idempotency/store.js'
import type { TLSSocket } from 'node:tls'
import { ENDED_CLIENT_ABORTED, ENDED_COMPLETE, ENDED_UPSTREAM_CUT, type LoggedRequest } from '../data/observe/access-log.js'
import { clientAddress } from '../data/observe/client-address.js'
import { newRequestId } from '../data/observe/request-id.js'
import type { TraceFacts } from '../data/observe/trace.js'

/** request bodies up to this size are kept until the answer starts, so a failed try can be replayed */
export const REPLAY_LIMIT = 64 * 1024
/** a body that waits for its upstream connection stops the client's reading past this */
const PENDING_LIMIT = 64 * 1024
/**
 * A body of a Content-Length up to this is read whole before an upstream is chosen (nginx's
 * proxy_request_buffering): a client that trickles it holds no upstream connection meanwhile.
 */
export const BUFFER_LIMIT = 64 * 1024

const CRLF = '\r\n'
const LAST_CHUNK = '0\r\n\r\n'
const CONTINUE = 'HTTP/1.1 100 Continue\r\n\r\n'

function retryNow (ex: Exchange): void {
  ex.retryTimer = null
  ex.start(ex.retryFrom)
}

const NO_HEADERS: readonly string[] = []
const OUR_HEADERS = /^claylb-idempotency-(?:id|fence):.*\r\n/gim

/** Where the answer's bytes go: a client socket, or an HTTP/2 stream's translator (engine/h2). */
export interface AnswerSink {
  write (data: string | Buffer, encoding?: BufferEncoding): boolean
  cork (): void
  uncork (): void
  destroy (): void
}

/**
 * What an exchange needs of its client: an HTTP/1.1 connection (engine/client-conn) or an HTTP/2
 * stream (engine/h2). The exchange always writes an HTTP/1.1 answer; an HTTP/2 stream translates it.
 */
export interface ClientSide {
  readonly engine: Engine
  readonly remoteAddress: string
  /** the peer is one of trustedProxies (its x-forwarded-* are kept) */
  readonly trusted: boolean
  /** an HTTP/2 stream (the log's protocol) */
  readonly http2: boolean
  readonly socket: AnswerSink
  /** the client's TLS socket, null over plain TCP (read by the log only) */
  tlsSocket (): TLSSocket | null
  hold (bit: number): void
  unhold (bit: number): void
  /** an upstream connection corked for the request head: uncorked once the client's current read is over */
  uncorkLater (c: UpstreamConn): void
  /** the active exchange's answer is the connection's last one */
  lastAnswer (): boolean
  exchangeDone (ex: Exchange): void
}

export class Exchange implements RequestHeadFacts, ResponseHeadFacts, UpstreamUser, DeadlineEntry, FinishedRequest, KeyedExchange, LoggedRequest, TraceFacts {
  readonly conn: ClientSide
  // ---- the request, from its head ----
  method = ''
  path = ''
  /** llhttp's [name, value, …] list as the client sent it (read by the idempotency gate) */
  rawHeaders: readonly string[] = NO_HEADERS
  versionMinor = 1
  clientKeepAlive = true
  headLines = ''
  headBytes = 0
  /** the latest try's host (logs, metrics) */
  host: Host | undefined = undefined
  hostHeader = ''
  hostCount = 0
  contentLength = -1
  chunkedIn = false
  otherCoding = false
  expectContinue = false
  badExpect = ''
  maxForwards = -1
  upgradeTo = ''
  idempotent = false
  /** the request target's length as it came (bytesIn) */
  private targetBytes = 0
  // ---- observability (data/observe): plain fields, read when the request ends ----
  requestId = ''
  traceId = ''
  parentSpanId = ''
  spanId = ''
  sampled = false
  /** filled by rate limits when they are configured (the log's rateLimit) */
  rateLimit = ''
  /** the status the client saw: the head it got (a cut answer keeps its 200), else what claylb answered */
  clientStatus = 0
  /** ENDED_* (data/observe/access-log) */
  ended = ENDED_COMPLETE
  /** bytes of heads and of bodies written to the client (as HTTP/1.1 frames them) */
  headOut = 0
  bodyOut = 0
  /** first try → the answer's head, ms; measured only when the log asks (-1: not measured or none) */
  upstreamMs = -1
  private upstreamAt = 0
  /** refused while parsing: answered in its turn, never forwarded */
  refusal: ProxyError | null = null
  /** the route it matched (from the routing state current when its head was parsed), and its pool */
  route: Route | null = null
  pool: RoutePool | null = null
  // ---- the request body ----
  /** chunks not yet written to the current try, or kept for a replay */
  private body: Buffer[] = []
  private pendingBytes = 0
  bodyBytes = 0
  /** the client's message is complete */
  bodyDone = false
  /** written chunks were dropped (past REPLAY_LIMIT): the body cannot be sent again */
  private bodyDropped = false
  // ---- the tries ----
  /** the current try: null before the first, between two and after the last */
  private cur: UpstreamTry | null = null
  attempts = 0
  status = 0
  startedAt = 0
  active = false
  /** an upstream may have acted on the request: request bytes of a try left (see retry-policy's rule) */
  mayHaveRun = false
  /** a small body is read whole before the first try starts (BUFFER_LIMIT) */
  private buffering = false
  /** a try that provably sent nothing was made again at once (once per request) */
  private staleRetried = false
  private isRetry = false
  retryTimer: NodeJS.Timeout | null = null
  retryFrom: Host | undefined = undefined
  // ---- the answer ----
  private responseStarted = false
  /** the head waits for the first body byte (until then a broken answer can still become a 502) */
  private headPending = false
  private respHeadText = ''
  respLines = ''
  respLength = -1
  respChunked = false
  /** re-chunk the body for the client */
  private chunkOut = false
  /** the client connection closes after this answer */
  closeAfter = false
  finished = false
  /** answered from the idempotency record */
  replayed = false
  private clientGone = false
  // ---- a keyed request (idempotency.routes): null on every other request ----
  keyed: KeyedRequest | null = null
  /** the newest body chunk, held back until the record is written (keyed requests only) */
  private held: Buffer | null = null
  // deadline list links (the request deadline)
  deadlineAt = 0
  prevDeadline: DeadlineEntry | null = null
  nextDeadline: DeadlineEntry | null = null

  constructor (conn: ClientSide) {
    this.conn = conn
  }

  /** Read the head; anything refused is decided here and answered when the exchange's turn comes. */
  fromHead (major: number, minor: number, raw: string[], method: string, url: string, keepAlive: boolean): void {
    const conn = this.conn
    const o = conn.engine.o
    this.method = method
    this.path = url
    this.targetBytes = url.length
    this.versionMinor = minor
    this.clientKeepAlive = keepAlive
    const count = raw.length >> 1
    // nginx's underscores_in_headers off: `X_Forwarded_For` would reach a CGI/WSGI app as
    // HTTP_X_FORWARDED_FOR, around the forwarding rules. Dropped here, so nothing after (routing, the
    // idempotency gate, the forwarded head) sees it
    if (o.underscoresInHeaders !== 'forward') raw = withoutUnderscores(raw)
    this.rawHeaders = raw
    requestHead(this, raw, conn.remoteAddress, conn.engine.proto, method, conn.trusted, null, o.observe)
    this.idempotent = isIdempotentMethod(method)
    if (major !== 1) {
      this.refuse('CLAYLB_HTTP_VERSION', `HTTP/${major}.${minor} is not supported; use HTTP/1.1`)
      return
    }
    // Node's parser counts names and values only; the limits hold for the head as it is forwarded
    if (count > o.maxHeaders) return this.refuse('CLAYLB_HEADERS_TOO_LARGE', `${count} request headers exceed the limit of ${o.maxHeaders}`)
    if (url.length + this.headBytes > o.maxHeaderBytes) return this.refuse('CLAYLB_HEADERS_TOO_LARGE', `request headers exceed ${o.maxHeaderBytes} bytes`)
    // RFC 9110 §9.1: methods are case-sensitive; `post` would dodge a route naming POST, then run as
    // POST in a framework that upper-cases it (nginx refuses it too)
    if (misspelledMethod(method)) return this.refuse('CLAYLB_BAD_REQUEST', `method names are case-sensitive: ${method} is not ${method.toUpperCase()}`)
    // RFC 9110 §10.1.1: an HTTP/1.0 client's 100-continue is ignored (it cannot take a 1xx)
    if (minor === 0) this.expectContinue = false
    if (method === 'CONNECT') return this.refuse('CLAYLB_NOT_IMPLEMENTED', 'CONNECT is not supported: claylb is a reverse proxy')
    if (this.hostCount > 1) return this.refuse('CLAYLB_BAD_REQUEST', 'more than one Host header')
    if (this.hostHeader === '' ? minor >= 1 : !validHost(this.hostHeader)) {
      return this.refuse('CLAYLB_BAD_REQUEST', this.hostHeader === '' ? 'HTTP/1.1 request without Host' : 'invalid Host header')
    }
    if (url.includes('#')) return this.refuse('CLAYLB_BAD_REQUEST', 'request target must not contain a fragment (#)')
    if (url.charCodeAt(0) !== 47 /* / */) {
      const origin = url === '*' && method === 'OPTIONS' ? url : toOriginForm(url, this.hostHeader)
      if (origin === undefined) return this.refuse('CLAYLB_BAD_REQUEST', 'request target must be a path, or an absolute http URL naming the Host')
      this.path = origin
    }
    if (this.otherCoding) return this.refuse('CLAYLB_NOT_IMPLEMENTED', 'transfer codings other than chunked are not supported')
    if (this.badExpect !== '') return this.refuse('CLAYLB_EXPECTATION_FAILED', `unsupported expectation: ${this.badExpect}`)
    const max = conn.engine.core.maxBodyBytes
    if (this.contentLength > max) return this.refuse('CLAYLB_BODY_TOO_LARGE', `body of ${this.contentLength} bytes exceeds the limit of ${max}`)
    const route = conn.engine.routing.match(method, this.path, this.hostHeader, raw)
    if (route === null) return this.refuse('CLAYLB_NO_ROUTE', `no route matches ${method} ${this.path}`)
    this.route = route
    this.pool = route.pool
    // a route that rewrites request headers: the head is made again with its rewrite (opt-in cost)
    if (route.requestHeaders !== null) requestHead(this, raw, conn.remoteAddress, conn.engine.proto, method, conn.trusted, route.requestHeaders, o.observe)
    if (route.strip !== 0) this.path = route.upstreamPath(this.path)
  }

  refuse (code: ProblemCode, detail: string): void {
    this.refusal = new ProxyError(code, detail)
  }

  private get hasBody (): boolean {
    return this.chunkedIn || this.contentLength > 0
  }

  /** Its turn has come: answer a refusal, or count it in flight and make the first try. */
  activate (): void {
    const core = this.conn.engine.core
    this.startedAt = performance.now()
    core.inflight++
    this.active = true
    if (this.refusal !== null) {
      this.fail(this.refusal)
      return
    }
    this.pool!.requests.add(this, Date.now())
    if (this.maxForwards === 0) {
      this.answerLocally()
      return
    }
    if (this.expectContinue && !this.bodyDone) this.conn.socket.write(CONTINUE, 'latin1')
    const gate = core.idempotency
    if (gate !== null) {
      // allocates nothing for a method no route names
      const route = gate.routes.match(this.method, this.path)
      if (route !== undefined) {
        gate.handle(this, route)
        return
      }
    }
    if (!this.bodyDone && this.contentLength > 0 && this.contentLength <= BUFFER_LIMIT) {
      this.buffering = true
      return
    }
    this.start(undefined)
  }

  // ---- the idempotency gate's side (keyed routes only) ----

  /** the body received so far as one buffer, kept as the one chunk to write upstream */
  wholeBody (): Buffer | null {
    const b = this.body
    if (b.length === 0) return null
    if (b.length === 1) return b[0]!
    const one = Buffer.concat(b)
    this.body = [one]
    return one
  }

  /** the gate decided to forward: with the claim's record id and fence, or as an ordinary request */
  forwardKeyed (claim: Claim | null): void {
    // only claylb speaks for the record: a client's own claylb-idempotency-* never reaches the upstream
    let lines = this.headLines.replace(OUR_HEADERS, '')
    if (claim !== null) lines += `${ID_HEADER}: ${claim.id}\r\n${FENCE_HEADER}: ${claim.fence}\r\n`
    this.headLines = lines
    this.start(undefined)
  }

  /** answer from the record: the stored status, headers and body, marked as a replay */
  replay (r: StoredResponse): void {
    let head = `HTTP/1.1 ${r.status} ${STATUS_CODES[r.status] ?? ''}\r\n`
    const h = r.headers
    // this request's id, not the one the first execution's answer echoed
    const id = this.conn.engine.o.observe?.idHeader ?? ''
    for (let i = 0; i < h.length; i += 2) if (id === '' || h[i]!.toLowerCase() !== id) head += `${h[i]!}: ${h[i + 1]!}\r\n`
    head += `idempotent-replayed: true\r\ncontent-length: ${r.body.length}\r\n`
    if (!this.clientKeepAlive || (!this.bodyDone && this.hasBody)) this.closeAfter = true
    if (this.closeAfter || this.conn.lastAnswer()) head += 'connection: close\r\n'
    if (id !== '') head += `${id}: ${this.requestId}\r\n`
    const s = this.conn.socket
    s.cork()
    s.write(head + CRLF, 'latin1')
    this.headOut += head.length + 2
    if (this.method !== 'HEAD' && r.body.length > 0) {
      s.write(r.body)
      this.bodyOut += r.body.length
    }
    s.uncork()
    this.replayed = true
    this.finish(r.status)
  }

  /** First try, or the next one after a retryable failure. */
  start (exclude: Host | undefined): void {
    if (this.finished) return
    const engine = this.conn.engine
    const pool = this.pool!
    const host = pool.balancer.pick(exclude)
    if (host === undefined) {
      this.fail(new ProxyError('CLAYLB_NO_HEALTHY_UPSTREAM', 'no healthy upstream is available', { retryAfter: 1 }))
      return
    }
    this.host = host
    if (this.upstreamAt === 0 && engine.core.timesUpstream) this.upstreamAt = performance.now()
    this.attempts++
    host.inflight++
    host.requests++
    // a request that must not run twice is not written on a connection that may meet its upstream's
    // keep-alive close (the write would leave, then the close: an unknown outcome)
    const c = engine.poolFor(host, pool.cluster.upstreamTls).acquire(this, this.idempotent && this.keyed === null ? -1 : engine.o.upstreamKeepAliveMs / SAFE_REUSE_SHARE)
    const t = new UpstreamTry(host, c)
    this.cur = t
    if (c.connected) this.writeRequest(t)
    else engine.timeConnect(c, pool)
  }

  /** the current try when `c` is its connection; null for a callback of a try that has ended */
  private tryOf (c: UpstreamConn): UpstreamTry | null {
    const t = this.cur
    return t !== null && t.up === c ? t : null
  }

  onUpstreamConnected (c: UpstreamConn): void {
    this.conn.engine.untime(c)
    const t = this.tryOf(c)
    if (t !== null) this.writeRequest(t)
  }

  private writeRequest (t: UpstreamTry): void {
    const c = t.up
    // corked until the end of the client's current read, so a body parsed right after the head (in
    // the same read) leaves in the head's write
    c.socket.cork()
    let head = `${this.method} ${this.path} HTTP/1.1\r\n`
    if (this.hostHeader === '' && (this.route!.requestHeaders === null || !this.route!.requestHeaders.drop.has('host'))) head += `host: ${c.pool.authority}\r\n`
    head += this.headLines
    if (this.chunkedIn) head += 'transfer-encoding: chunked\r\n'
    if (this.upgradeTo !== '') head += `connection: upgrade\r\nupgrade: ${this.upgradeTo}\r\n`
    c.write(head + CRLF)
    t.sent = true
    let ok = true
    const body = this.body
    for (let i = 0; i < body.length; i++) ok = this.writeChunk(c, body[i]!)
    t.bodyWritten = body.length
    this.pendingBytes = 0
    if (this.bodyDropped) this.dropWritten()
    if (this.bodyDone) ok = this.endRequest(t)
    // the whole request in this one write: a worker's reset can prove it unread (UpstreamConn.resetUnread)
    if (!this.idempotent) c.wholeInOne = this.bodyDone && !this.chunkedIn && head.length + this.bodyBytes <= ONE_BUFFER_BYTES
    this.conn.uncorkLater(c)
    if (!ok && !this.bodyDone) this.conn.hold(HOLD_UPSTREAM)
    this.conn.unhold(HOLD_PENDING)
  }

  private writeChunk (c: UpstreamConn, chunk: Buffer): boolean {
    if (!this.chunkedIn) return c.write(chunk)
    c.write(chunk.length.toString(16) + CRLF)
    c.write(chunk)
    return c.write(CRLF)
  }

  /** the whole request is written: from now the try waits for the answer's head (timed) */
  private endRequest (t: UpstreamTry): boolean {
    t.requestWritten = true
    this.conn.engine.timeHeaders(t.up, this.pool!)
    return this.chunkedIn ? t.up.write(LAST_CHUNK) : true
  }

  /** the chunks the current try has written are not kept any more (none without a try) */
  private dropWritten (): void {
    const t = this.cur
    if (t !== null) {
      this.body.splice(0, t.bodyWritten)
      t.bodyWritten = 0
    }
    this.bodyDropped = true
  }

  // ---- the client's body ----

  onClientBody (chunk: Buffer): void {
    if (this.finished || this.refusal !== null) return
    this.bodyBytes += chunk.length
    const max = this.conn.engine.core.maxBodyBytes
    if (this.bodyBytes > max) {
      this.closeAfter = true
      this.fail(new ProxyError('CLAYLB_BODY_TOO_LARGE', `body exceeds the limit of ${max} bytes`))
      return
    }
    const t = this.cur
    // a keyed request's body is kept whole (the gate fingerprints it; a retry can replay it)
    if (this.bodyBytes > REPLAY_LIMIT && !this.bodyDropped && this.keyed === null) this.dropWritten()
    if (t !== null && t.sent && !t.discarding) {
      const ok = this.writeChunk(t.up, chunk)
      if (!this.bodyDropped) {
        this.body.push(chunk)
        t.bodyWritten++
      }
      if (!ok) this.conn.hold(HOLD_UPSTREAM)
      return
    }
    this.body.push(chunk)
    this.pendingBytes += chunk.length
    if (this.pendingBytes > PENDING_LIMIT && this.keyed === null) this.conn.hold(HOLD_PENDING)
  }

  onClientBodyEnd (): void {
    this.bodyDone = true
    if (this.finished) return
    if (this.buffering) {
      this.buffering = false
      this.start(undefined)
      return
    }
    if (this.keyed !== null) this.keyed.bodyEnded()
    const t = this.cur
    if (t !== null && t.sent && !t.requestWritten && !t.discarding) this.endRequest(t)
  }

  onUpstreamDrain (c: UpstreamConn): void {
    if (this.tryOf(c) !== null) this.conn.unhold(HOLD_UPSTREAM)
  }

  // ---- the answer ----

  onResponseHead (c: UpstreamConn, status: number, message: string, headers: string[], upgrade: boolean): number {
    const t = this.tryOf(c)
    if (t === null || this.finished) return NO_BODY
    const engine = this.conn.engine
    engine.untime(c)
    if (status < 200) return this.onInterim(c, status, message, headers, upgrade)
    const policy = this.pool!.retry
    if (policy.onStatus.size > 0 && policy.onStatus.has(status) && this.mayRetry('http-5xx', false)) {
      t.discarding = true
      return this.method === 'HEAD' ? NO_BODY : 0
    }
    this.responseStarted = true
    this.status = status
    if (this.upstreamAt !== 0) this.upstreamMs = performance.now() - this.upstreamAt
    const obs = engine.o.observe
    // RFC 9110 §8.6, RFC 9112 §6.1: a 204 carries neither Content-Length nor Transfer-Encoding (a 304
    // and an answer to HEAD may: they tell what a GET would have had)
    responseHead(this, headers, this.route!.responseHeaders, status === 204, obs === null ? '' : obs.idHeader, this.requestId)
    if (this.keyed !== null) this.keyed.onHeaders(status, headers)
    const noBody = this.method === 'HEAD' || status === 204 || status === 304
    let framing = ''
    if (noBody) {
      if (this.respChunked && this.versionMinor >= 1 && status !== 204) framing = 'transfer-encoding: chunked\r\n'
    } else if (this.respLength < 0) {
      if (this.versionMinor >= 1) {
        this.chunkOut = true
        framing = 'transfer-encoding: chunked\r\n'
      } else this.closeAfter = true
    }
    // an answer before the request was all received: the rest of it cannot be read as a next request
    if (!this.clientKeepAlive || !this.bodyDone) this.closeAfter = true
    const connection = this.closeAfter || this.conn.lastAnswer() ? 'connection: close\r\n' : this.versionMinor === 0 ? 'connection: keep-alive\r\n' : ''
    this.respHeadText = `HTTP/1.1 ${status} ${message}\r\n${this.respLines}${framing}${connection}\r\n`
    this.headPending = true
    return this.method === 'HEAD' ? NO_BODY : 0
  }

  /**
   * A 1xx (RFC 9110 §15.2). A 101 is the answer to the upgrade the client asked for, or a broken
   * answer (502 now, as HAProxy does). Every other 1xx (100, 102, 103, 199…) goes to the client as
   * it came, without a length (§8.6), before the final answer; except to an HTTP/1.0 client, which
   * cannot take one. An HTTP/2 client gets it as an interim HEADERS frame (engine/h2).
   */
  private onInterim (c: UpstreamConn, status: number, message: string, headers: string[], upgrade: boolean): number {
    if (status === 101) {
      if (upgrade && this.upgradeTo !== '') return this.conn.engine.tunnel(this, c, message, headers)
      return c.broken('CLAYLB_UNREQUESTED_UPGRADE')
    }
    if (this.versionMinor >= 1) {
      responseHead(this, headers, this.route!.responseHeaders, true)
      this.conn.socket.write(`HTTP/1.1 ${status} ${message}\r\n${this.respLines}\r\n`, 'latin1')
    }
    return NO_BODY
  }

  onResponseBody (c: UpstreamConn, chunk: Buffer): void {
    const t = this.tryOf(c)
    if (t === null || t.discarding || this.finished) return
    if (this.keyed !== null) {
      // hold back the newest chunk: the last byte goes out only after the record is written
      this.keyed.onData(chunk)
      const prev = this.held
      this.held = chunk
      if (prev === null) return
      chunk = prev
    }
    // backpressure: the client reads slower than the upstream sends; read again on the client's 'drain'
    if (!this.sendBody(chunk)) c.pauseReading()
  }

  /** one chunk of the answer's body to the client (the head first when it waits), framed as it goes out */
  private sendBody (chunk: Buffer): boolean {
    const s = this.conn.socket
    let ok: boolean
    if (this.headPending || this.chunkOut) {
      s.cork()
      if (this.headPending) {
        this.headPending = false
        s.write(this.respHeadText, 'latin1')
        this.headOut += this.respHeadText.length
        this.respHeadText = ''
      }
      this.bodyOut += chunk.length
      if (this.chunkOut) {
        s.write(chunk.length.toString(16) + CRLF, 'latin1')
        s.write(chunk)
        ok = s.write(CRLF, 'latin1')
      } else ok = s.write(chunk)
      s.uncork()
    } else {
      this.bodyOut += chunk.length
      ok = s.write(chunk)
    }
    return ok
  }

  /** the client socket drained */
  onClientDrain (): void {
    this.cur?.up.resumeReading()
  }

  onResponseComplete (c: UpstreamConn): void {
    const t = this.tryOf(c)
    if (t === null) return
    this.conn.engine.untime(c)
    if (t.discarding) {
      c.done(t.requestWritten)
      const failed = t.host
      this.endTry(t, 'http-5xx')
      if (this.clientGone) this.finish(499)
      else this.retry(failed, 'http-5xx')
      return
    }
    // a connection a request that must not run twice opened because its upstream closes idle ones is
    // not pooled: reused only by such requests it would pile up, one per request, until the sweep
    c.done(t.requestWritten && this.bodyDone && ((this.idempotent && this.keyed === null) || !c.pool.closesIdle))
    this.endTry(t, this.status >= 500 ? 'http-5xx' : 'ok')
    if (this.finished) return
    if (this.keyed !== null) {
      // the record is written before the last byte reaches the client, so an immediate retry replays;
      // the store's own timeouts bound the wait, not the request deadline (the answer is all here)
      this.pool!.requests.remove(this)
      this.keyed.complete().then(() => this.endAnswer(), () => this.endAnswer())
      return
    }
    this.endAnswer()
  }

  /** the last of the answer: a held chunk, the head when nothing was written yet, the last chunk */
  private endAnswer (): void {
    if (this.finished) return
    const s = this.conn.socket
    const held = this.held
    if (held !== null) {
      this.held = null
      s.cork()
      this.sendBody(held)
    }
    if (this.headPending) {
      this.headPending = false
      s.write(this.chunkOut ? this.respHeadText + LAST_CHUNK : this.respHeadText, 'latin1')
      this.headOut += this.respHeadText.length
      this.respHeadText = ''
    } else if (this.chunkOut) s.write(LAST_CHUNK, 'latin1')
    if (held !== null) s.uncork()
    this.finish(this.status)
  }

  onUpstreamError (c: UpstreamConn, code: string): void {
    const t = this.tryOf(c)
    if (t === null) return
    this.conn.engine.untime(c)
    const host = t.host
    // the retry rule's one fact (proxy/retry-policy): did any byte of the request leave?
    const unsent = unsentTry(c.connected, t.sent, c.refused, c.resetUnread(code))
    const outcome: TryOutcome = this.clientGone ? 'local' : unsent ? 'connect-failed' : 'reset'
    this.endTry(t, outcome)
    if (this.clientGone) {
      this.finish(499)
      return
    }
    if (this.finished) return
    if (unsent && c.connected && !this.staleRetried && !this.bodyDropped) {
      // connected, then closed or refused before a byte left (a pooled connection its upstream had
      // closed, a dead worker's socket): once per request this try is made again at once, on another
      // host, outside the retry budget and attempts (what a pool does with a stale connection)
      this.staleRetried = true
      this.conn.engine.core.retries.retried['not-sent']++
      this.attempts--
      this.start(host)
      return
    }
    // an answer that came broken is the upstream's answer, not a lost try: nginx's default does not
    // retry it either (invalid_header is not in proxy_next_upstream), and a GET's effects ran
    if (!this.responseStarted && !c.answeredBadly && this.mayRetry(outcome, unsent)) {
      this.retry(host, outcome as RetryReason)
      return
    }
    this.fail(new ProxyError('CLAYLB_UPSTREAM_FAILED', 'the upstream failed before it answered', { logDetail: `upstream ${host.id} failed: ${code}${unsent ? ' (nothing sent)' : ''}` }))
  }

  onTryTimeout (c: UpstreamConn): void {
    const t = this.tryOf(c)
    if (t === null) return
    c.destroy()
    const host = t.host
    const connecting = !c.connected
    const outcome: TryOutcome = connecting ? 'connect-failed' : 'timeout'
    this.endTry(t, outcome)
    if (this.finished) return
    if (!this.responseStarted && this.mayRetry(outcome, !t.sent)) {
      this.retry(host, outcome as RetryReason)
      return
    }
    this.fail(connecting
      ? new ProxyError('CLAYLB_UPSTREAM_FAILED', 'the upstream could not be reached in time', { logDetail: `upstream ${host.id} failed: connect timeout` })
      : new ProxyError('CLAYLB_UPSTREAM_TIMEOUT', 'the upstream did not answer in time', { logDetail: `upstream ${host.id} timed out` }))
  }

  /**
   * The answer's body stopped arriving for timeouts.idleMs. Its status is out (or about to be): the
   * client connection is cut so that it never takes what it got for a whole answer; nothing is retried.
   */
  onBodyTimeout (c: UpstreamConn): void {
    const t = this.tryOf(c)
    if (t === null) return
    c.destroy()
    const host = t.host
    this.endTry(t, 'timeout')
    this.fail(new ProxyError('CLAYLB_UPSTREAM_TIMEOUT', 'the upstream stopped sending its answer', { logDetail: `upstream ${host.id} sent no byte of its answer for ${this.conn.engine.o.bodyIdleMs} ms` }))
  }

  /** the upstream agreed to the upgrade: the tunnel has the sockets, the exchange is over */
  tunnelled (c: UpstreamConn): void {
    this.conn.engine.untime(c)
    const t = this.tryOf(c)
    if (t !== null) this.endTry(t, 'ok')
    this.finish(101)
  }

  // ---- retries ----

  /** `unsent`: no byte of the try left (proxy/retry-policy's rule decides) */
  private mayRetry (outcome: TryOutcome, unsent: boolean): boolean {
    const again = resendable(unsent, this.idempotent, !this.bodyDropped)
    return this.pool!.retry.allow(outcome, this.attempts, again, this.conn.engine.core.inflight)
  }

  private retry (failed: Host | undefined, reason: RetryReason): void {
    const pool = this.pool!
    const delay = pool.retry.begin(reason, this.attempts, this.deadlineAt)
    if (delay < 0) {
      this.fail(new ProxyError('CLAYLB_UPSTREAM_TIMEOUT', `no time left for a retry within ${pool.requests.timeoutMs} ms`))
      return
    }
    this.isRetry = true
    if (delay < 1) {
      this.start(failed)
      return
    }
    this.retryFrom = failed
    this.retryTimer = setTimeout(retryNow, delay, this)
  }

  private releaseRetrySlot (): void {
    if (this.isRetry) {
      this.pool!.retry.active--
      this.isRetry = false
    }
  }

  // ---- client side and deadline ----

  clientClosed (): void {
    if (this.finished) return
    this.clientGone = true
    this.ended = ENDED_CLIENT_ABORTED
    // it left after its answer's head: that is the status it saw (nginx logs 499 only before one)
    if (this.responseStarted && !this.headPending) this.clientStatus = this.status
    this.dropTry('local')
    this.finish(499)
  }

  onDeadline (): void {
    if (this.finished) return
    if (!this.bodyDone && this.hasBody) {
      // the client has not sent its whole request yet: its fault, never the upstream's
      this.dropTry('local')
      this.fail(new ProxyError('CLAYLB_REQUEST_TIMEOUT', `the request body was not received within ${this.pool!.requests.timeoutMs} ms`))
      return
    }
    this.dropTry('timeout')
    this.fail(new ProxyError('CLAYLB_UPSTREAM_TIMEOUT', `no complete answer within ${this.pool!.requests.timeoutMs} ms`))
  }

  // ---- bookkeeping ----

  /** The current try ends here, whatever it was doing: its connection is destroyed, never reused. */
  private dropTry (outcome: TryOutcome): void {
    const t = this.cur
    if (t === null) return
    this.conn.engine.untime(t.up)
    t.up.destroy()
    this.endTry(t, outcome)
  }

  /** the current try `t` ends (once: it is dropped here): its host is released and its outcome reported */
  private endTry (t: UpstreamTry, outcome: TryOutcome): void {
    this.cur = null
    if (t.sent && outcome !== 'connect-failed') this.mayHaveRun = true
    this.releaseRetrySlot()
    t.host.release()
    this.conn.engine.core.report(t.host, outcome)
  }

  /**
   * Answer with a problem and finish; when part of the upstream's answer already went to the client,
   * cut the connection instead, so that the client never takes what it got for a whole answer.
   */
  fail (err: ProxyError): void {
    if (this.finished) return
    this.dropTry('local')
    if (err.logDetail !== undefined) this.conn.engine.logProblem(this, err)
    if (this.responseStarted && !this.headPending) {
      // the client got a head and part of a body: the log tells that status, and that it was cut
      this.clientStatus = this.status
      this.ended = ENDED_UPSTREAM_CUT
      this.conn.socket.destroy()
      this.finish(502)
      return
    }
    this.headPending = false
    // after a framing problem or a refused body the rest of the stream cannot be trusted; an answer
    // before the body is all in leaves the rest unreadable as a next request
    const code = err.code
    if (code === 'CLAYLB_BAD_REQUEST' || code === 'CLAYLB_NOT_IMPLEMENTED' || code === 'CLAYLB_BODY_TOO_LARGE' ||
      code === 'CLAYLB_HTTP_VERSION' || (!this.bodyDone && this.hasBody) || !this.clientKeepAlive) this.closeAfter = true
    const obs = this.conn.engine.o.observe
    if (obs !== null && obs.idHeader !== '' && this.requestId === '') this.requestId = newRequestId()
    const answer = problemAnswer(err, this.closeAfter || this.conn.lastAnswer(), this.method === 'HEAD', obs === null ? '' : obs.idHeader, this.requestId)
    this.conn.socket.write(answer, 'latin1')
    this.headOut += answer.length - problemBodyBytes
    this.bodyOut += problemBodyBytes
    this.finish(err.status)
  }

  /** Max-Forwards: 0 on OPTIONS or TRACE: claylb is the final recipient (RFC 9110 §7.6.2). */
  private answerLocally (): void {
    let body = ''
    let head: string
    if (this.method === 'TRACE') {
      // the request as received, minus credentials (so TRACE cannot be used to read them back)
      body = `TRACE ${this.path} HTTP/1.1\r\n${this.headLines.replace(/^(?:authorization|cookie|proxy-authorization):.*\r\n/gim, '')}\r\n`
      head = `HTTP/1.1 200 OK\r\ncontent-type: message/http\r\ncontent-length: ${Buffer.byteLength(body, 'latin1')}\r\n`
    } else head = 'HTTP/1.1 200 OK\r\nallow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE\r\ncontent-length: 0\r\n'
    if (!this.bodyDone && this.hasBody) this.closeAfter = true
    if (this.closeAfter || !this.clientKeepAlive) {
      this.closeAfter = true
      head += 'connection: close\r\n'
    }
    this.conn.socket.write(head + CRLF + body, 'latin1')
    this.headOut += head.length + 2
    this.bodyOut += body.length
    this.finish(200)
  }

  finish (status: number): void {
    if (this.finished) return
    this.finished = true
    this.status = status
    if (this.clientStatus === 0) this.clientStatus = status
    if (this.retryTimer !== null) {
      clearTimeout(this.retryTimer)
      this.retryTimer = null
    }
    this.releaseRetrySlot()
    this.body = []
    if (this.keyed !== null) {
      // every way out without a complete answer ends here: the claim is freed, or marked unknown
      this.keyed.ended(this.mayHaveRun)
      this.held = null
    }
    // a hold for this request's body (its upstream's backpressure) must not outlive it
    this.conn.unhold(HOLD_UPSTREAM | HOLD_PENDING)
    this.pool?.requests.remove(this)
    if (this.active) this.conn.engine.core.finish(this)
    this.conn.exchangeDone(this)
  }

  // ---- what the log reads (data/observe/access-log), computed only when a line asks ----

  get clock (): number {
    return this.conn.engine.clock
  }

  get protocol (): string {
    return this.conn.http2 ? 'HTTP/2.0' : this.versionMinor === 0 ? 'HTTP/1.0' : 'HTTP/1.1'
  }

  /** the request's bytes as HTTP/1.1 carries them: request line, header lines, body */
  get bytesIn (): number {
    return this.method.length + this.targetBytes + 12 + this.headBytes + 2 + this.bodyBytes
  }

  clientAddress (): string {
    const conn = this.conn
    return conn.trusted ? clientAddress(this.rawHeaders, conn.remoteAddress, conn.engine.routing.trusted) : conn.remoteAddress
  }

  tlsVersion (): string {
    const s = this.conn.tlsSocket()
    return s === null ? '' : s.getProtocol() ?? ''
  }

  sni (): string {
    const s = this.conn.tlsSocket()
    return s === null || typeof s.servername !== 'string' ? '' : s.servername
  }

  /** the first value of a request header ('' when absent) */
  header (lowerName: string): string {
    const raw = this.rawHeaders
    for (let i = 0; i < raw.length; i += 2) if (raw[i]!.length === lowerName.length && raw[i]!.toLowerCase() === lowerName) return raw[i + 1]!
    return ''
  }

  /** executed, replayed, conflict (refused by the record), unknown (may have run, not recorded); '' when not keyed */
  idempotencyOutcome (): string {
    if (this.replayed) return 'replayed'
    const k = this.keyed
    if (k === null) return ''
    if (k.claim === null) return 'conflict'
    return this.ended === ENDED_COMPLETE && this.clientStatus < 500 ? 'executed' : this.mayHaveRun ? 'unknown' : 'released'
  }
}

/** why the client connection's reading is held (bits of ClientConn.holds) */
export const HOLD_PIPELINE = 1
export const HOLD_UPSTREAM = 2
export const HOLD_PENDING = 4
export const HOLD_CLOSING = 8

/** the body bytes of the last problemAnswer (the log's bodyBytesOut), read right after the call */
let problemBodyBytes = 0

/**
 * A problem+json answer as one string. `head`: the answer to a HEAD request, its head alone (RFC 9110
 * §9.3.2): a body after it would be read by the client as the next answer.
 */
export function problemAnswer (err: ProxyError, close: boolean, head = false, idHeader = '', requestId = ''): string {
  const [status, title] = PROBLEMS[err.code]
  const body = problemBody(err.code, err.message, requestId)
  const bytes = Buffer.byteLength(body)
  let out = `HTTP/1.1 ${status} ${title}\r\ncontent-type: application/problem+json\r\ncontent-length: ${bytes}\r\ncache-control: no-store\r\n`
  if (err.retryAfter !== undefined) out += `retry-after: ${Math.max(0, Math.ceil(err.retryAfter))}\r\n`
  if (idHeader !== '') out += `${idHeader}: ${requestId}\r\n`
  if (close) out += 'connection: close\r\n'
  problemBodyBytes = head ? 0 : bytes
  return head ? out + CRLF : out + CRLF + body
}
