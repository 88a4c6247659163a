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
import type { PickContext } from '../balancer/hash-key.js'
import { ProxyError, problemBody, PROBLEMS, type ProblemCode } from '../../shared/errors.js'
import type { DeadlineEntry } from '../http/deadlines.js'
import { isIdempotentMethod, validHost, withoutUnderscores } from '../http/headers.js'
import { toOriginForm, type FinishedRequest } from './proxy.js'
import { resendable, unsentTry, type RetryReason, type TryOutcome } from '../upstream/retry-policy.js'
import type { Engine } from './engine.js'
import { requestHead, responseHead, type RequestHeadFacts, type ResponseHeadFacts } from '../http/head.js'
import { misspelledMethod, NO_BODY } from '../http/llhttp.js'
import { ONE_BUFFER_BYTES, SAFE_REUSE_SHARE, type ConnectionWaiter, type UpstreamConn, type UpstreamPool, type UpstreamUser } from '../upstream/upstream-pool.js'
import { UpstreamTry } from '../upstream/upstream-try.js'
import type { Route } from '../routing/route-table.js'
import type { RoutePool } from '../routing/route-pool.js'
import type { Policy } from '../policy/policy.js'
import { KeyedRequest, type KeyedExchange } from '../idempotency/gate.js'
import { CLIENT_ANSWER, type AnswerHandler, type AnswerTarget } from './answer-handler.js'
import type { Claim } from '../../shared/idempotency/core.js'
import { FENCE_HEADER, ID_HEADER } from '../../shared/idempotency/decision.js'
import type { StoredResponse } from '../../shared/idempotency/store.js'
import { compressedLines, type Compression } from '../policy/compression.js'
import { CompressStream, type CompressedOut } from '../policy/compress-stream.js'
import { policyTally } from '../policy/tally.js'
import type { TLSSocket } from 'node:tls'
import { ENDED_CLIENT_ABORTED, ENDED_COMPLETE, ENDED_UPSTREAM_CUT, type LoggedRequest } from '../observe/access-log.js'
import { clientAddress } from '../observe/client-address.js'
import { newRequestId } from '../observe/request-id.js'
import type { TraceFacts } from '../observe/trace.js'

/** request bodies up to this size are kept until the answer starts, so a failed try can be replayed */
export const REPLAY_LIMIT = 64 * 1024
/** a body that waits for its upstream connection stops the client's reading past this */
const PENDING_LIMIT = 64 * 1024
/**
 * A body of a Content-Length up to this is read whole before an upstream is chosen (nginx's
 * proxy_request_buffering): a client that trickles it holds no upstream connection meanwhile.
 */
export const BUFFER_LIMIT = 64 * 1024

/** a head and first body chunk up to this together leave in one buffer (Exchange.headWith) */
const ONE_WRITE_BYTES = 4 * 1024

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

export class Exchange implements PickContext, ConnectionWaiter, RequestHeadFacts, ResponseHeadFacts, UpstreamUser, DeadlineEntry, FinishedRequest, KeyedExchange, AnswerTarget, CompressedOut, LoggedRequest, TraceFacts {
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
  /** the client's address, for a balancer hashing `ip` (PickContext) */
  get clientAddress (): string {
    return this.conn.remoteAddress
  }

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
  /** the access rules and rate limits current when its head was parsed (null: none configured) */
  policy: Policy | null = null
  /** the rate limit whose decision is pending (data/policy) */
  limitIndex = 0
  /** the path as the client sent it, when stripPrefix changed `path` and a policy matches on it ('' otherwise) */
  clientPath = ''
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
  /** counted in its pool's maxInflight (pool limits) */
  private admitted = false
  /** waiting for a connection of this host's pool (maxConnectionsPerHost), else null */
  private waitingOn: UpstreamPool | null = null
  private waitHost: Host | undefined = undefined
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
  /** the answer's body goes through zlib (the route's compression chose an algorithm) */
  private compressor: CompressStream | null = null
  /** the client connection closes after this answer */
  closeAfter = false
  finished = false
  /** answered from the idempotency record */
  replayed = false
  private clientGone = false
  /**
   * Where the answer's events go: the shared CLIENT_ANSWER, or a handler wrapping it (a keyed request's
   * record, proxy/idempotency-gate). A wrapped request keeps its whole body and is never sent twice.
   */
  answer: AnswerHandler = CLIENT_ANSWER
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
    const routing = conn.engine.routing
    const policy = this.policy = routing.policy
    if (policy !== null && policy.access.length > 0 && policy.denies(this)) return this.refuse('CLAYLB_ACCESS_DENIED', 'access denied to this address')
    const route = routing.match(method, this.path, this.hostHeader, raw)
    if (route === null) return this.refuse('CLAYLB_NO_ROUTE', `no route matches ${method} ${this.path}`)
    this.route = route
    this.pool = route.pool
    // a route that rewrites request headers: the head is made again with its rewrite (opt-in cost)
    if (route.requestHeaders !== null) requestHead(this, raw, conn.remoteAddress, conn.engine.proto, method, conn.trusted, route.requestHeaders, o.observe)
    if (route.pathChanges) {
      const before = this.path
      if (policy !== null) this.clientPath = before
      this.path = route.upstreamPath(before)
      if (route.rewrite !== null && this.path !== before) policyTally.rewrites++
    }
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
    // only a redirect route has no pool: claylb answers it
    if (this.pool === null) {
      this.answerRedirect()
      return
    }
    const limits = this.pool.limits
    if (limits !== null) {
      if (!limits.admit()) return this.fail(overloaded(this.pool.name, 'maxInflight'))
      this.admitted = true
    }
    this.pool.requests.add(this, Date.now())
    const policy = this.policy
    if (policy !== null && policy.limits.length > 0 && !policy.admit(this, 0)) return
    this.proceed()
  }

  /** a pending rate limit decided (data/policy/leases): 0 admitted, else refused */
  limitDecided (waitMs: number): void {
    if (this.finished) return
    if (this.policy!.resume(this, waitMs)) this.proceed()
  }

  /** every rate limit admitted it: on to the upstream */
  private proceed (): void {
    const core = this.conn.engine.core
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
    const pool = this.pool!
    const host = pool.balancer.pick(exclude, this)
    if (host === undefined) {
      this.fail(new ProxyError('CLAYLB_NO_HEALTHY_UPSTREAM', 'no healthy upstream is available', { retryAfter: 1 }))
      return
    }
    this.startOn(host, false)
  }

  /**
   * A try on `host`, or a wait for one of its connections when the pool caps them: behind those
   * already waiting (first come, first served), or back at the head of the line for one whose turn
   * came but lost the connection to the sweep or a close.
   */
  private startOn (host: Host, woken: boolean): void {
    const engine = this.conn.engine
    const pool = this.pool!
    const limits = pool.limits
    if (limits !== null && limits.maxConnectionsPerHost > 0) {
      const up = engine.poolFor(host, pool.cluster.upstreamTls)
      if ((!woken && up.waiters.length > 0) || !up.hasRoom(limits.maxConnectionsPerHost)) {
        if (!woken && !limits.enqueue()) return this.fail(overloaded(pool.name, 'maxPending'))
        this.waitingOn = up
        this.waitHost = host
        if (woken) up.waiters.unshift(this)
        else up.waiters.push(this)
        return
      }
      if (woken) limits.dequeue()
    }
    this.host = host
    if (this.upstreamAt === 0 && engine.core.timesUpstream) this.upstreamAt = performance.now()
    this.attempts++
    host.inflight++
    host.requests++
    // a request that must not run twice is not written on a connection that may meet its upstream's
    // keep-alive close (the write would leave, then the close: an unknown outcome)
    const c = engine.poolFor(host, pool.cluster.upstreamTls).acquire(this, this.idempotent && this.answer === CLIENT_ANSWER ? -1 : engine.o.upstreamKeepAliveMs / SAFE_REUSE_SHARE, limits === null || limits.maxConnectionsPerHost === 0 ? Infinity : limits.maxConnectionsPerHost)
    const t = new UpstreamTry(host, c)
    this.cur = t
    if (c.connected) this.writeRequest(t)
    else engine.timeConnect(c, pool)
  }

  /** its turn in the connection queue (taken off it by the pool); still counted pending until it starts */
  onConnectionFree (): void {
    const host = this.waitHost!
    this.waitingOn = null
    this.waitHost = undefined
    if (this.finished) return
    // a host taken out meanwhile: another pick (which may queue anew); else this host, whose connection is free now
    if (host.available) return this.startOn(host, true)
    this.pool!.limits!.dequeue()
    this.start(undefined)
  }

  /** out of the connection queue: the request ended while waiting */
  private leaveQueue (): void {
    const up = this.waitingOn!
    this.waitingOn = null
    this.waitHost = undefined
    const i = up.waiters.indexOf(this)
    if (i >= 0) up.waiters.splice(i, 1)
    this.pool!.limits!.dequeue()
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
    if (this.bodyBytes > REPLAY_LIMIT && !this.bodyDropped && this.answer === CLIENT_ANSWER) this.dropWritten()
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
    if (this.pendingBytes > PENDING_LIMIT && this.answer === CLIENT_ANSWER) this.conn.hold(HOLD_PENDING)
  }

  onClientBodyEnd (): void {
    this.bodyDone = true
    if (this.finished) return
    if (this.buffering) {
      this.buffering = false
      this.start(undefined)
      return
    }
    if (this.answer !== CLIENT_ANSWER) this.answer.onRequestEnd(this)
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
    this.answer.onHeaders(this, status, headers)
    // a keyed answer is recorded as the upstream sent it; replays are not compressed either
    if (this.answer === CLIENT_ANSWER && this.route!.compression !== null) this.compressAnswer(this.route!.compression, status, headers)
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
    // backpressure: the client reads slower than the upstream sends; read again on the client's 'drain'
    if (!this.answer.onData(this, chunk)) c.pauseReading()
  }

  /** one chunk of the answer's body: to the client, or into the compressor (AnswerTarget) */
  sendBody (chunk: Buffer): boolean {
    return this.compressor === null ? this.sendOut(chunk) : this.compressor.write(chunk)
  }

  /** the route compresses: the head made for it, and the compressor when an algorithm was chosen */
  private compressAnswer (z: Compression, status: number, headers: readonly string[]): void {
    const algorithm = z.decide(this.method, status, this.rawHeaders, headers)
    if (algorithm === 'none') return
    this.respLines = compressedLines(this.respLines, algorithm)
    if (algorithm === '') return
    this.respLength = -1
    this.compressor = new CompressStream(algorithm, z, this)
  }

  /** zlib took what it held */
  compressorDrained (): void {
    this.cur?.up.resumeReading()
  }

  /** zlib sent its last byte: the answer ends */
  compressedEnd (): void {
    this.compressor = null
    this.endAnswer()
  }

  compressorFailed (err: Error): void {
    this.fail(new ProxyError('CLAYLB_UPSTREAM_FAILED', 'the answer could not be compressed', { logDetail: `compression failed: ${err.message}` }))
  }

  /** one chunk to the client (the head first when it waits), framed as it goes out */
  sendOut (chunk: Buffer): boolean {
    const s = this.conn.socket
    let ok: boolean
    if (this.headPending && !this.chunkOut && this.respHeadText.length + chunk.length <= ONE_WRITE_BYTES) return s.write(this.headWith(chunk))
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

  /**
   * The waiting head and a small first body chunk as one buffer: one plain write instead of a writev of
   * a latin1 string and a buffer (the string is copied into a buffer anyway, in C++); most answers
   * are one head and one chunk. Up to 4 KB the buffer is a slice of Node's pool (Buffer.poolSize / 2):
   * a view object, no new memory.
   */
  private headWith (chunk: Buffer): Buffer {
    const head = this.respHeadText
    this.headPending = false
    this.respHeadText = ''
    this.headOut += head.length
    this.bodyOut += chunk.length
    // latin1: one byte per character
    const out = Buffer.allocUnsafe(head.length + chunk.length)
    out.write(head, 0, 'latin1')
    chunk.copy(out, head.length)
    return out
  }

  /** the client socket drained */
  onClientDrain (): void {
    if (this.compressor !== null) this.compressor.resume()
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
    c.done(t.requestWritten && this.bodyDone && ((this.idempotent && this.answer === CLIENT_ANSWER) || !c.pool.closesIdle))
    this.endTry(t, this.status >= 500 ? 'http-5xx' : 'ok')
    if (this.finished) return
    this.answer.onComplete(this)
  }

  /** the last of the answer: the head when nothing was written yet, the last chunk; then finish */
  endAnswer (): void {
    if (this.finished) return
    if (this.compressor !== null) {
      // the rest comes out of zlib; compressedEnd ends the answer
      this.compressor.end()
      return
    }
    if (this.headPending) {
      this.headPending = false
      this.conn.socket.write(this.chunkOut ? this.respHeadText + LAST_CHUNK : this.respHeadText, 'latin1')
      this.headOut += this.respHeadText.length
      this.respHeadText = ''
    } else if (this.chunkOut) this.conn.socket.write(LAST_CHUNK, 'latin1')
    this.finish(this.status)
  }

  leaveDeadline (): void {
    this.pool!.requests.remove(this)
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

  /** The route redirects: claylb answers with its Location, no upstream is picked. */
  private answerRedirect (): void {
    const r = this.route!.redirect!
    const location = r.location(this.conn.engine.proto, this.hostHeader, this.path)
    policyTally.redirects[r.status] = (policyTally.redirects[r.status] ?? 0) + 1
    if (!this.bodyDone && this.hasBody) this.closeAfter = true
    let head = `HTTP/1.1 ${r.status} ${STATUS_CODES[r.status]!}\r\nlocation: ${location}\r\ncontent-length: 0\r\n`
    if (this.closeAfter || !this.clientKeepAlive || this.conn.lastAnswer()) {
      this.closeAfter = true
      head += 'connection: close\r\n'
    }
    const obs = this.conn.engine.o.observe
    if (obs !== null && obs.idHeader !== '') {
      if (this.requestId === '') this.requestId = newRequestId()
      head += `${obs.idHeader}: ${this.requestId}\r\n`
    }
    this.conn.socket.write(head + CRLF, 'latin1')
    this.headOut += head.length + 2
    this.finish(r.status)
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
    if (this.compressor !== null) {
      this.compressor.destroy()
      this.compressor = null
    }
    // every way out ends here: a wrapping handler frees its claim, or marks it unknown
    if (this.answer !== CLIENT_ANSWER) this.answer.onEnd(this, this.mayHaveRun)
    // a hold for this request's body (its upstream's backpressure) must not outlive it
    this.conn.unhold(HOLD_UPSTREAM | HOLD_PENDING)
    this.pool?.requests.remove(this)
    if (this.waitingOn !== null) this.leaveQueue()
    if (this.admitted) {
      this.admitted = false
      this.pool!.limits!.done()
    }
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

  resolvedClient (): string {
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
    const k = this.answer
    if (!(k instanceof KeyedRequest)) return ''
    if (k.claim === null) return 'conflict'
    return this.ended === ENDED_COMPLETE && this.clientStatus < 500 ? 'executed' : this.mayHaveRun ? 'unknown' : 'released'
  }
}

/** a pool's circuit breaker refused the request (routing/pool-limits) */
function overloaded (pool: string, limit: 'maxInflight' | 'maxPending'): ProxyError {
  return new ProxyError('CLAYLB_POOL_OVERLOADED', `pool "${pool}" is at its ${limit} limit`, { retryAfter: 1 })
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
  if (err.headerLines !== undefined) out += err.headerLines
  if (idHeader !== '') out += `${idHeader}: ${requestId}\r\n`
  if (close) out += 'connection: close\r\n'
  problemBodyBytes = head ? 0 : bytes
  return head ? out + CRLF : out + CRLF + body
}
