/**
 * @module proxy/idempotency-gate
 * The idempotency layer at the proxy, for the routes of `idempotency.routes` only: validate the key,
 * wait for the whole body (the exchange keeps it) and fingerprint it, claim the key BEFORE the
 * balancer picks, then either answer from the record (no upstream touched) or forward with a
 * KeyedRequest wrapped around the exchange's answer handler (engine/answer-handler, as undici's
 * decorator handlers): it tees the answer into the record and holds back its last chunk until the
 * record is written. Works on the engine's Exchange, the one object per request; only a keyed request
 * gets a KeyedRequest, so an unkeyed one pays a route check and nothing else.
 */
import type { Logger } from '../../shared/log.js'
import { ProxyError } from '../../shared/errors.js'
import type { Claim, IdempotencyCore } from '../../shared/idempotency/core.js'
import type { IdempotencyDecider } from '../../shared/idempotency/decision.js'
import { BodyFingerprint } from '../../shared/idempotency/fingerprint.js'
import { contentTypeOf } from '../../shared/idempotency/content-type.js'
import { keyedBodyTooLarge, replayableHeaders } from '../../shared/idempotency/http.js'
import type { IdempotentRoute, RouteTable } from '../../shared/idempotency/routes.js'
import type { StoredResponse } from '../../shared/idempotency/store.js'
import { responseHeaderList } from '../http/head.js'
import { CLIENT_ANSWER, type AnswerHandler, type AnswerTarget } from '../engine/answer-handler.js'

export interface GateOptions {
  routes: RouteTable
  decider: IdempotencyDecider
  logger: Logger
}

/** What the gate needs of the engine's exchange. */
export interface KeyedExchange {
  readonly method: string
  readonly path: string
  readonly rawHeaders: readonly string[]
  /** the declared Content-Length (-1: none, or chunked) */
  readonly contentLength: number
  readonly bodyDone: boolean
  readonly finished: boolean
  /** the answer's handler: a KeyedRequest wraps the one it had */
  answer: AnswerHandler
  /** the whole body received so far as one buffer (kept by the exchange for the upstream), or null */
  wholeBody (): Buffer | null
  /** forward it: with the claim's headers, or (no claim) as an ordinary request */
  forwardKeyed (claim: Claim | null): void
  /** answer from the record */
  replay (r: StoredResponse): void
  fail (err: ProxyError): void
}

/** the body wait's failure that is not an answer: the exchange ended (client gone, body refused) */
class ExchangeGone extends Error {}

export class IdempotencyGate {
  /** replaced by a reload (idempotency.routes applies live) */
  routes: RouteTable
  readonly core: IdempotencyCore
  private readonly o: GateOptions

  constructor (o: GateOptions) {
    this.o = o
    this.routes = o.routes
    this.core = o.decider.core
  }

  /** The exchange is active (counted in flight); every path out ends it (answer, forward, or its own end). */
  handle (ex: KeyedExchange, route: IdempotentRoute): void {
    const k = new KeyedRequest(this.core, this.o.logger, ex.answer)
    ex.answer = k
    this.run(ex, k, route).catch((err: unknown) => {
      if (err instanceof ExchangeGone || ex.finished) return
      this.o.logger.error({ err }, 'idempotency gate failed')
      ex.fail(new ProxyError('CLAYLB_UPSTREAM_FAILED', 'internal error in the idempotency layer'))
    })
  }

  private async run (ex: KeyedExchange, k: KeyedRequest, route: IdempotentRoute): Promise<void> {
    const d = await this.o.decider.decide(ex.rawHeaders, ex.path, route, async (target) => {
      // refused before the body is waited for when its length is declared; a chunked one once it is in
      if (ex.contentLength > route.maxBodyBytes) throw keyedBodyTooLarge(route)
      const fp = new BodyFingerprint(ex.method, target, contentTypeOf(ex.rawHeaders))
      if (!ex.bodyDone) await k.bodyEnd()
      if (ex.finished) throw new ExchangeGone()
      const body = ex.wholeBody()
      if (body === null) return fp.digest()
      if (body.length > route.maxBodyBytes) throw keyedBodyTooLarge(route)
      fp.update(body)
      return fp.digest(body)
    })
    if (ex.finished) { // the client left (or the deadline passed) while the store was asked
      if (d.kind === 'proceed') this.core.release(d.claim).catch(() => {})
      return
    }
    switch (d.kind) {
      case 'pass':
        // an optional route without a key is an ordinary request (minus any claylb-idempotency-* it sent)
        ex.answer = k.inner
        ex.forwardKeyed(null)
        return
      case 'proceed':
        k.claim = d.claim
        ex.forwardKeyed(d.claim)
        return
      case 'replay':
        ex.replay(d.response)
        return
      default:
        ex.fail(d.error)
    }
  }
}


/**
 * One keyed request, the handler wrapped around its exchange's answer: waits for its body, then (once
 * claimed) tees the upstream's answer into the record, up to `maxResponseBytes` of body, then only the
 * size. It passes each body chunk on one chunk late, so the last one (and the answer's end) reaches
 * the client only after the record is written: a retry the client makes the moment it has the answer
 * is replayed. Unclaimed (no key on an optional route), it is replaced by the handler it wraps.
 */
export class KeyedRequest implements AnswerHandler {
  claim: Claim | null = null
  /** the newest body chunk, held back until the record is written */
  private held: Buffer | null = null
  private bodyWaiter: ((ok: boolean) => void) | null = null
  private status = 0
  private headers: string[] = []
  private chunks: Buffer[] = []
  private size = 0
  private tooLarge = false
  /** the record was told the outcome (complete, released or unknown) */
  private settled = false

  constructor (private readonly core: IdempotencyCore, private readonly logger: Logger, readonly inner: AnswerHandler = CLIENT_ANSWER) {}

  /** resolves when the client's body is all in; rejects when the exchange ended first */
  bodyEnd (): Promise<void> {
    return new Promise((resolve, reject) => {
      this.bodyWaiter = (ok) => { if (ok) resolve(); else reject(new ExchangeGone()) }
    })
  }

  /** the exchange: the client's message is complete */
  onRequestEnd (): void {
    const w = this.bodyWaiter
    this.bodyWaiter = null
    w?.(true)
  }

  onHeaders (ex: AnswerTarget, status: number, raw: readonly string[]): void {
    this.status = status
    this.headers = replayableHeaders(responseHeaderList(raw))
    this.inner.onHeaders(ex, status, raw)
  }

  onData (ex: AnswerTarget, chunk: Buffer): boolean {
    this.record(chunk)
    const prev = this.held
    this.held = chunk
    return prev === null ? true : this.inner.onData(ex, prev)
  }

  private record (chunk: Buffer): void {
    if (this.tooLarge) return
    this.size += chunk.length
    if (this.size > this.core.settings.maxResponseBytes) {
      this.tooLarge = true
      this.chunks = []
      return
    }
    this.chunks.push(chunk)
  }

  /**
   * The answer is all in: the record is written, then the held chunk and the end go out (in one
   * write). The store's own timeouts bound the wait, not the request deadline (the answer is here).
   */
  onComplete (ex: AnswerTarget): void {
    ex.leaveDeadline()
    this.complete().then(() => this.release(ex), () => this.release(ex))
  }

  private release (ex: AnswerTarget): void {
    if (ex.finished) return
    const held = this.held
    this.held = null
    const s = ex.conn.socket
    s.cork()
    if (held !== null) this.inner.onData(ex, held)
    this.inner.onComplete(ex)
    s.uncork()
  }

  /** Store the answer. Resolves either way (a failed write is offered again by the core). */
  private async complete (): Promise<void> {
    if (this.claim === null || this.settled) return
    this.settled = true
    try {
      if (this.tooLarge) await this.core.completeTooLarge(this.claim, this.status)
      else await this.core.complete(this.claim, { status: this.status, headers: this.headers, body: Buffer.concat(this.chunks, this.size) })
    } catch (err) {
      // executed but not recorded yet: offered again in the background; until it lands retries get
      // 409 (in flight, then outcome-unknown once the lease ends), never a second execution
      this.logger.error({ err }, 'idempotency: could not store the response')
    }
  }

  /**
   * The exchange ended. Without a complete answer: `sent` says an upstream may have acted on the
   * request, so retries must not run it again blindly (unknown); otherwise the claim is freed.
   */
  onEnd (ex: AnswerTarget, sent: boolean): void {
    this.held = null
    this.inner.onEnd(ex, sent)
    const w = this.bodyWaiter
    this.bodyWaiter = null
    w?.(false)
    if (this.claim === null || this.settled) return
    this.settled = true
    const p = sent ? this.core.markUnknown(this.claim) : this.core.release(this.claim)
    p.catch((err: unknown) => this.logger.error({ err }, 'idempotency: could not settle the claim'))
  }
}
