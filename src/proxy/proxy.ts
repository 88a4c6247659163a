/**
 * @module proxy/proxy
 * The request path, top to bottom: refuse what must not pass, rewrite headers, hand the request to an
 * Exchange that picks an upstream and streams the answer back. Built once; holds no per-request state.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { Transform, type Readable, type TransformCallback } from 'node:stream'
import type { AccessLog } from '../log.js'
import type { Balancer } from '../balancer/balancer.js'
import type { Host } from '../upstream/host.js'
import { kClosing, ProxyError, sendProblem, type ClosingSocket } from '../errors.js'
import { Deadlines, type DeadlineEntry } from './deadlines.js'
import { Exchange } from './exchange.js'
import { isIdempotentMethod, upstreamRequestHeaders, validHost, type RequestHeaderInfo } from './headers.js'
import type { ResponseTap } from './exchange.js'
import type { IdempotencyGate } from './idempotency-gate.js'
import { RetryPolicy, type RetrySettings, type RetryTally, type TryOutcome } from './retry-policy.js'

export interface ProxyOptions {
  balancer: Balancer
  retry: RetrySettings
  /** the retry counters shared with every pool's policy (the metrics read one set) */
  tally?: RetryTally
  requestTimeoutMs: number
  maxBodyBytes: number
  /** one line per request; null when log.access is off */
  accessLog: AccessLog | null
}

/** What the bookkeeping of a finished request reads (either engine's exchange). */
export interface FinishedRequest extends DeadlineEntry {
  readonly method: string
  readonly path: string
  readonly status: number
  readonly host: Host | undefined
  readonly attempts: number
  readonly startedAt: number
}

/** Hooks other modules attach to (metrics, outlier detection). Defaults are no-ops so the hot path never asks. */
export interface ProxyObserver {
  /** every try's outcome, per host */
  tryEnded (host: Host, outcome: TryOutcome): void
  /** every request, once, when it is over */
  requestEnded (ex: FinishedRequest, durationMs: number): void
  /** a request a layer answered itself (idempotency replays and refusals), once */
  requestAnswered (status: number, durationMs: number): void
}

const noopObserver: ProxyObserver = { tryEnded () {}, requestEnded () {}, requestAnswered () {} }

export class ProxyCore {
  readonly balancer: Balancer
  readonly retryPolicy: RetryPolicy
  readonly deadlines: Deadlines
  /** limits.maxBodyBytes (a reload may change it) */
  maxBodyBytes: number
  inflight = 0
  observer: ProxyObserver = noopObserver
  /** set when `idempotency.routes` is not empty: the one check ordinary requests pay */
  idempotency: IdempotencyGate | null = null
  private readonly accessLog: AccessLog | null
  private idleWaiters: Array<() => void> = []

  constructor (o: ProxyOptions) {
    this.balancer = o.balancer
    this.retryPolicy = new RetryPolicy(o.retry, o.tally)
    this.deadlines = new Deadlines(o.requestTimeoutMs)
    this.maxBodyBytes = o.maxBodyBytes
    this.accessLog = o.accessLog
  }

  /** The entry for every proxied request. */
  handle (req: IncomingMessage, res: ServerResponse): void {
    // pipelined behind a refusal that closes this connection: never forwarded, never answered
    if ((req.socket as ClosingSocket)[kClosing] === true) return
    const method = req.method!
    let path = req.url!
    const info = upstreamRequestHeaders(req.rawHeaders, req.socket.remoteAddress ?? '', 'encrypted' in req.socket ? 'https' : 'http')
    if (info.host === '' ? req.httpVersionMinor === 1 : !validHost(info.host)) {
      sendProblem(res, new ProxyError('CLAYLB_BAD_REQUEST', info.host === '' ? 'HTTP/1.1 request without Host' : 'invalid Host header'))
      return
    }
    // a fragment is never part of a request target (RFC 9112 §3.2); upstreams disagree on where a path ends at '#'
    if (path.includes('#')) {
      sendProblem(res, new ProxyError('CLAYLB_BAD_REQUEST', 'request target must not contain a fragment (#)'))
      return
    }
    if (path.charCodeAt(0) !== 47 /* / */) {
      const origin = toOriginForm(path, info.host)
      if (origin === undefined) {
        sendProblem(res, new ProxyError('CLAYLB_BAD_REQUEST', 'request target must be a path, or an absolute http URL naming the Host'))
        return
      }
      path = origin
    }
    if (info.otherCoding) {
      sendProblem(res, new ProxyError('CLAYLB_NOT_IMPLEMENTED', 'transfer codings other than chunked are not supported'))
      return
    }
    if (info.contentLength > this.maxBodyBytes) {
      req.resume()
      sendProblem(res, new ProxyError('CLAYLB_BODY_TOO_LARGE', `body of ${info.contentLength} bytes exceeds the limit of ${this.maxBodyBytes}`))
      return
    }
    this.inflight++
    if (this.idempotency !== null) {
      const route = this.idempotency.routes.match(method, path)
      if (route !== undefined) {
        this.idempotency.handle(this, req, res, method, path, info, route)
        return
      }
    }
    this.forward(req, res, method, path, info, null)
  }

  /**
   * Hand a request (already counted in flight) to an Exchange. `body` is the request body when a
   * layer before read it whole; otherwise the request streams through.
   */
  forward (req: IncomingMessage, res: ServerResponse, method: string, path: string, info: RequestHeaderInfo, tap: ResponseTap | null, body?: Buffer | null): void {
    let b: Readable | Buffer | null = body ?? null
    if (body === undefined && info.hasBody) b = info.contentLength >= 0 ? req : req.pipe(new BodyLimit(this.maxBodyBytes))
    const ex = new Exchange(this, req, res, method, path, info.headers, b, isIdempotentMethod(method))
    ex.tap = tap
    this.deadlines.add(ex, Date.now())
    ex.start()
  }

  /**
   * A request (counted in flight) that a layer answered itself, without an upstream: counted and
   * timed like any other (from `startedAt`, a performance.now()); `replayed` marks a stored answer.
   */
  answered (method: string, path: string, status: number, startedAt = performance.now(), replayed = false): void {
    const ms = performance.now() - startedAt
    this.observer.requestAnswered(status, ms)
    if (this.accessLog !== null) this.accessLog.request(method, path, status, undefined, 0, ms, replayed)
    this.settled()
  }

  report (host: Host, outcome: TryOutcome): void {
    this.observer.tryEnded(host, outcome)
  }

  finish (ex: FinishedRequest): void {
    this.deadlines.remove(ex)
    const ms = performance.now() - ex.startedAt
    this.observer.requestEnded(ex, ms)
    if (this.accessLog !== null) this.accessLog.request(ex.method, ex.path, ex.status, ex.host?.id, ex.attempts, ms)
    this.settled()
  }

  private settled (): void {
    if (--this.inflight === 0 && this.idleWaiters.length > 0) {
      for (const w of this.idleWaiters.splice(0)) w()
    }
  }

  /** Resolves once no request is in flight (used by graceful shutdown). */
  idle (): Promise<void> {
    if (this.inflight === 0) return Promise.resolve()
    return new Promise((resolve) => this.idleWaiters.push(resolve))
  }

  close (): void {
    this.deadlines.close()
    this.accessLog?.flush()
  }
}

/**
 * Absolute-form → origin-form. The authority must be the Host the request carries (RFC 9112 §3.2.2
 * makes it win over Host; refusing a mismatch keeps the upstream and the client agreeing on the host).
 */
export function toOriginForm (target: string, host: string): string | undefined {
  if (!/^https?:\/\//i.test(target)) return undefined
  try {
    const u = new URL(target)
    if (u.username !== '' || u.password !== '' || host === '') return undefined
    if (new URL(`${u.protocol}//${host}`).host !== u.host) return undefined
    return u.pathname + u.search
  } catch {
    return undefined
  }
}

/** Counts a chunked body's bytes and errors the stream past the limit (a declared length is checked up front). */
class BodyLimit extends Transform {
  private seen = 0
  constructor (private readonly max: number) { super() }
  override _transform (chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.seen += chunk.length
    if (this.seen > this.max) cb(new ProxyError('CLAYLB_BODY_TOO_LARGE', `body exceeds the limit of ${this.max} bytes`))
    else cb(null, chunk)
  }
}
