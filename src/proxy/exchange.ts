/**
 * @module proxy/exchange
 * One client request and its tries upstream: pick a host, dispatch with undici, stream the answer
 * back with backpressure, retry when it is safe. The handler is undici's raw dispatch handler, so
 * there is no intermediate stream and headers stay raw arrays.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Readable } from 'node:stream'
import type { Dispatcher } from 'undici'
import type { Host } from '../upstream/host.js'
import { ProxyError, sendProblem } from '../errors.js'
import type { DeadlineEntry } from './deadlines.js'
import { downstreamResponseHeaders } from './headers.js'
import type { ProxyCore } from './proxy.js'
import type { RetryReason, TryOutcome } from './retry-policy.js'

const kExchange = Symbol('claylb.exchange')
type Res = ServerResponse & { [kExchange]?: Exchange }

// undici codes raised before a request was written to a socket: the upstream saw nothing
const CONNECT_ERRORS = new Set([
  'ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH',
  'ECONNRESET', 'EPIPE', 'ENOENT', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED',
])
const TIMEOUT_ERRORS = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT'])

/**
 * Optional observer of one exchange's answer (the idempotency layer tees the response into its record
 * through this). Null on ordinary requests, so they pay one null check per event.
 */
export interface ResponseTap {
  onHeaders (status: number, rawHeaders: Buffer[]): void
  onData (chunk: Buffer): void
  /** called before the last byte is written to the client */
  onComplete (): void | Promise<void>
  /** the exchange ended without a complete answer; `sent`: request bytes may have reached an upstream */
  onError (status: number, sent: boolean): void
}

class ClientGone extends Error { override name = 'ClientGone' }
class DeadlineExceeded extends Error { override name = 'DeadlineExceeded' }

function retryNow (ex: Exchange): void {
  ex.retryTimer = null
  ex.start(ex.retryFrom)
}

function onResClose (this: Res): void {
  const ex = this[kExchange]
  if (ex !== undefined && !this.writableFinished) ex.clientClosed()
}

export class Exchange implements Dispatcher.DispatchHandler, DeadlineEntry {
  host: Host | undefined = undefined
  attempts = 0
  status = 0
  startedAt: number
  /** request bytes may have reached the current host */
  private sent = false
  private responseStarted = false
  private finished = false
  private clientGone = false
  private isRetry = false
  private tryOpen = false
  /** the upstream answered a status listed in retry.onStatus: its body is dropped, then the request retried */
  private discarding = false
  /** a retry waiting out its backoff, and the host it must avoid */
  retryTimer: NodeJS.Timeout | null = null
  retryFrom: Host | undefined = undefined
  /** set by the idempotency layer on keyed routes */
  tap: ResponseTap | null = null
  /** the tap was told the outcome (complete or error) */
  private tapSettled = false
  private held: Buffer | null = null
  /**
   * The upstream's head, until the first byte of the answer goes to the client (Node sends a head
   * only with the body's first write anyway). While it waits, a broken answer can still be a 502.
   */
  private headPending = false
  private headText = ''
  private headHeaders: string[] | null = null
  private abortUpstream: ((err?: Error) => void) | null = null
  private resume: (() => void) | null = null
  private opts: Dispatcher.DispatchOptions
  // deadline list links (see deadlines.ts)
  deadlineAt = 0
  prevDeadline: DeadlineEntry | null = null
  nextDeadline: DeadlineEntry | null = null

  constructor (
    readonly core: ProxyCore,
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly method: string,
    readonly path: string,
    headers: string[],
    /** a stream forwarded once, or a Buffer (read whole by the idempotency layer: replayable) */
    private readonly body: Readable | Buffer | null,
    private readonly idempotent: boolean,
  ) {
    this.startedAt = performance.now()
    this.opts = { method, path, headers, body, blocking: false }
    ;(res as Res)[kExchange] = this
    res.on('close', onResClose)
  }

  /** First try, or the next one after a retryable failure. */
  start (exclude?: Host): void {
    if (this.finished) return
    const host = this.core.balancer.pick(exclude)
    if (host === undefined) {
      this.fail(new ProxyError('CLAYLB_NO_HEALTHY_UPSTREAM', 'no healthy upstream is available', { retryAfter: 1 }))
      return
    }
    this.host = host
    this.attempts++
    this.sent = false
    this.tryOpen = true
    const perTry = this.core.retryPolicy.perTryTimeoutMs
    // a try never outlives the request's deadline (the sweep would cut it anyway, without a retry)
    if (perTry > 0) this.opts.headersTimeout = Math.max(1, Math.min(perTry, this.deadlineAt - Date.now()))
    host.inflight++
    host.requests++
    host.pool.dispatch(this.opts, this)
  }

  // ---- undici handler ----

  onConnect (abort: (err?: Error) => void): void {
    if (this.finished || this.clientGone) {
      abort(this.clientGone ? new ClientGone('client closed') : new DeadlineExceeded('deadline'))
      return
    }
    this.abortUpstream = abort
    this.sent = true
  }

  onHeaders (statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (statusCode < 200) return true // 1xx: Node answers the client's own 100-continue itself
    if (this.core.retryPolicy.onStatus.size > 0 && this.core.retryPolicy.onStatus.has(statusCode) && this.mayRetry('http-5xx')) {
      this.discarding = true
      return true
    }
    this.responseStarted = true
    this.status = statusCode
    this.resume = resume
    if (this.finished) return false
    if (this.tap !== null) this.tap.onHeaders(statusCode, rawHeaders)
    // fields, not an object: no allocation per request beyond the header list itself
    this.headPending = true
    this.headText = statusText
    this.headHeaders = downstreamResponseHeaders(rawHeaders)
    return true
  }

  private writeHead (): void {
    this.headPending = false
    this.res.writeHead(this.status, this.headText, this.headHeaders!)
    this.headHeaders = null
  }

  onData (chunk: Buffer): boolean {
    if (this.discarding) return true
    if (this.tap !== null) {
      // hold back the newest chunk: the last byte goes out only after the tap committed its record
      this.tap.onData(chunk)
      const prev = this.held
      this.held = chunk
      if (prev === null) return true
      chunk = prev
    }
    if (this.headPending) this.writeHead()
    if (this.res.write(chunk)) return true
    // Backpressure: the client reads slower than the upstream sends; undici pauses until 'drain'.
    this.res.once('drain', this.resume!)
    return false
  }

  onComplete (): void {
    if (this.discarding) {
      this.discarding = false
      const failed = this.host
      this.endTry('http-5xx')
      if (this.clientGone) this.finish(499)
      else this.retry(failed, 'http-5xx')
      return
    }
    this.endTry(this.status >= 500 ? 'http-5xx' : 'ok')
    if (this.tap !== null) {
      // the record is committed before the last byte reaches the client, so an immediate retry replays
      this.tapSettled = true
      const p = this.tap.onComplete()
      if (p !== undefined) {
        p.then(() => this.completeResponse(), () => this.completeResponse())
        return
      }
    }
    this.completeResponse()
  }

  private completeResponse (): void {
    if (this.headPending) this.writeHead()
    if (this.held !== null) {
      this.res.end(this.held)
      this.held = null
    } else this.res.end()
    this.finish(this.status)
  }

  onError (err: Error): void {
    this.discarding = false
    const host = this.host
    const code = (err as { code?: string }).code ?? ''
    const outcome: TryOutcome = this.clientGone || err instanceof ClientGone || err instanceof ProxyError ? 'local'
      : err instanceof DeadlineExceeded ? 'timeout'
        : !this.sent && CONNECT_ERRORS.has(code) ? 'connect-failed'
          : TIMEOUT_ERRORS.has(code) ? 'timeout'
            : code === 'UND_ERR_INVALID_ARG' ? 'local'
              : 'reset'
    this.endTry(outcome)
    if (this.clientGone) {
      this.finish(499)
      return
    }
    if (this.finished) return
    if (err instanceof ProxyError) { // raised by our own request-body checks
      this.fail(err)
      return
    }
    if (!this.responseStarted && this.mayRetry(outcome)) {
      this.retry(host, outcome as RetryReason)
      return
    }
    this.fail(outcome === 'timeout'
      ? new ProxyError('CLAYLB_UPSTREAM_TIMEOUT', `upstream ${host?.id ?? '?'} timed out`, { cause: err })
      : outcome === 'local'
        ? new ProxyError('CLAYLB_BAD_REQUEST', err.message, { cause: err })
        : new ProxyError('CLAYLB_UPSTREAM_FAILED', `upstream ${host?.id ?? '?'} failed: ${code || err.message}`, { cause: err }))
  }

  // ---- retries ----

  private mayRetry (outcome: TryOutcome): boolean {
    const replayable = (this.body === null || Buffer.isBuffer(this.body) || !this.req.readableDidRead) && (!this.sent || this.idempotent)
    return this.core.retryPolicy.allow(outcome, this.attempts, replayable, this.core.inflight)
  }

  /** Another try on another host after a jittered backoff, unless that would start past the deadline. */
  private retry (failed: Host | undefined, reason: RetryReason): void {
    const delay = this.core.retryPolicy.begin(reason, this.attempts, this.deadlineAt)
    if (delay < 0) {
      this.fail(new ProxyError('CLAYLB_UPSTREAM_TIMEOUT', `no time left for a retry within ${this.core.deadlines.timeoutMs} ms`))
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
      this.core.retryPolicy.active--
      this.isRetry = false
    }
  }

  // ---- client side and deadline ----

  clientClosed (): void {
    if (this.finished) return
    this.clientGone = true
    if (this.abortUpstream !== null) this.abortUpstream(new ClientGone('client closed'))
    else if (this.host === undefined || this.responseStarted || this.retryTimer !== null) this.finish(499)
  }

  onDeadline (): void {
    if (this.finished) return
    const err = new ProxyError('CLAYLB_UPSTREAM_TIMEOUT', `no complete answer within ${this.core.deadlines.timeoutMs} ms`)
    this.fail(err)
    this.abortUpstream?.(new DeadlineExceeded('deadline'))
  }

  // ---- bookkeeping ----

  private endTry (outcome: TryOutcome): void {
    const host = this.host
    this.releaseRetrySlot()
    this.abortUpstream = null
    if (host !== undefined && this.tryOpen) {
      this.tryOpen = false
      host.release()
      this.core.report(host, outcome)
    }
  }

  /**
   * Answer with a problem and finish; when part of the upstream's answer already went to the client,
   * cut the connection instead, so that the client never takes what it got for a whole answer.
   */
  fail (err: ProxyError): void {
    if (this.finished) return
    if (this.responseStarted && !this.headPending) {
      this.res.destroy()
      this.finish(502)
      return
    }
    sendProblem(this.res, err)
    this.finish(err.status)
  }

  private finish (status: number): void {
    if (this.finished) return
    this.finished = true
    this.status = status
    if (this.tap !== null && !this.tapSettled) {
      // every way out without a complete answer (proxy error, broken response, client gone) ends here
      this.tapSettled = true
      this.tap.onError(status, this.sent)
    }
    if (this.retryTimer !== null) {
      clearTimeout(this.retryTimer)
      this.retryTimer = null
    }
    this.releaseRetrySlot()
    this.res.removeListener('close', onResClose)
    ;(this.res as Res)[kExchange] = undefined
    this.core.finish(this)
  }
}
