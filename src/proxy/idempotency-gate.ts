/**
 * @module proxy/idempotency-gate
 * The idempotency layer at the proxy, for the routes of `idempotency.routes` only: validate the key,
 * read the body once (fingerprint while it arrives), claim the key BEFORE the balancer picks, then
 * either answer from the record (no upstream touched) or forward with a tap that tees the response
 * into the record and commits it before the last byte goes out.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { performance } from 'node:perf_hooks'
import type { Logger } from '../log.js'
import { ProxyError, sendProblem } from '../errors.js'
import type { Claim, IdempotencyCore } from '../idempotency/core.js'
import { withIdempotencyHeaders, type IdempotencyDecider } from '../idempotency/decision.js'
import { BodyFingerprint } from '../idempotency/fingerprint.js'
import { readBody } from '../idempotency/body.js'
import { replayableHeaders, writeReplay } from '../idempotency/http.js'
import type { IdempotentRoute, RouteTable } from '../idempotency/routes.js'
import type { ResponseTap } from './exchange.js'
import { downstreamResponseHeaders, type RequestHeaderInfo } from './headers.js'
import type { ProxyCore } from './proxy.js'

export interface GateOptions {
  routes: RouteTable
  decider: IdempotencyDecider
  maxBodyBytes: number
  logger: Logger
}

/** the body reader's failure that is not an answer: the client went away */
class ClientGone extends Error {}

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

  /** The proxy counted the request in flight; every path out calls `proxy.answered` or `proxy.forward`. */
  handle (proxy: ProxyCore, req: IncomingMessage, res: ServerResponse, method: string, path: string, info: RequestHeaderInfo, route: IdempotentRoute): void {
    const started = performance.now()
    this.run(proxy, req, res, method, path, info, route, started).catch((err: unknown) => {
      if (err instanceof ClientGone) {
        proxy.answered(method, path, 499, started)
        return
      }
      this.o.logger.error({ err }, 'idempotency gate failed')
      this.answer(proxy, req, res, method, path, started, new ProxyError('CLAYLB_UPSTREAM_FAILED', 'internal error in the idempotency layer'))
    })
  }

  private answer (proxy: ProxyCore, req: IncomingMessage, res: ServerResponse, method: string, path: string, started: number, err: ProxyError): void {
    if (!req.complete) {
      req.resume()
      res.shouldKeepAlive = false
    }
    sendProblem(res, err)
    proxy.answered(method, path, err.status, started)
  }

  private async run (proxy: ProxyCore, req: IncomingMessage, res: ServerResponse, method: string, path: string, info: RequestHeaderInfo, route: IdempotentRoute, started: number): Promise<void> {
    let body: Buffer | null = null
    const d = await this.o.decider.decide(req.rawHeaders, path, route, async (target) => {
      const fp = new BodyFingerprint(method, target, req.headers['content-type'])
      if (info.hasBody) {
        body = await readBody(req, this.o.maxBodyBytes, fp).catch((err: unknown) => {
          throw err instanceof ProxyError ? err : new ClientGone()
        })
      }
      return fp.digest(body ?? undefined)
    })
    switch (d.kind) {
      case 'pass':
        // an optional route without a key is an ordinary request (minus any claylb-idempotency-* it sent)
        withIdempotencyHeaders(info.headers, null)
        proxy.forward(req, res, method, path, info, null)
        return
      case 'proceed':
        if (res.destroyed) { // the client left while we claimed: nothing was sent anywhere
          this.core.release(d.claim).catch(() => {})
          proxy.answered(method, path, 499, started)
          return
        }
        withIdempotencyHeaders(info.headers, d.claim)
        proxy.forward(req, res, method, path, info, new RecordTap(this.core, d.claim, this.o.logger), body)
        return
      case 'replay':
        writeReplay(res, d.response)
        proxy.answered(method, path, d.response.status, started, true)
        return
      default:
        this.answer(proxy, req, res, method, path, started, d.error)
    }
  }
}

/**
 * Tees one upstream answer into the record: up to `maxResponseBytes` of body, then only the size.
 * Completion is awaited by the exchange before it writes the last chunk.
 */
class RecordTap implements ResponseTap {
  private status = 0
  private headers: string[] = []
  private chunks: Buffer[] = []
  private size = 0
  private tooLarge = false

  constructor (private readonly core: IdempotencyCore, private readonly claim: Claim, private readonly logger: Logger) {}

  onHeaders (status: number, rawHeaders: Buffer[]): void {
    this.status = status
    this.headers = replayableHeaders(downstreamResponseHeaders(rawHeaders))
  }

  onData (chunk: Buffer): void {
    if (this.tooLarge) return
    this.size += chunk.length
    if (this.size > this.core.settings.maxResponseBytes) {
      this.tooLarge = true
      this.chunks = []
      return
    }
    this.chunks.push(chunk)
  }

  async onComplete (): Promise<void> {
    try {
      if (this.tooLarge) await this.core.completeTooLarge(this.claim, this.status)
      else await this.core.complete(this.claim, { status: this.status, headers: this.headers, body: Buffer.concat(this.chunks, this.size) })
    } catch (err) {
      // executed but not recorded yet: offered again in the background; until it lands retries get
      // 409 (in flight, then outcome-unknown once the lease ends), never a second execution
      this.logger.error({ err }, 'idempotency: could not store the response')
    }
  }

  onError (_status: number, sent: boolean): void {
    // sent: the upstream may have acted on it, so retries must not run it again blindly
    const p = sent ? this.core.markUnknown(this.claim) : this.core.release(this.claim)
    p.catch((err: unknown) => this.logger.error({ err }, 'idempotency: could not settle the claim'))
  }
}

