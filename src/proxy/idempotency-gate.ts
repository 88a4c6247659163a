/**
 * @module proxy/idempotency-gate
 * The idempotency layer at the proxy, for the routes of `idempotency.routes` only: validate the key,
 * read the body once (fingerprint while it arrives), claim the key BEFORE the balancer picks, then
 * either answer from the record (no upstream touched) or forward with a tap that tees the response
 * into the record and commits it before the last byte goes out.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Logger } from '../log.js'
import { ProxyError } from '../errors.js'
import type { Claim, IdempotencyCore } from '../idempotency/core.js'
import { scopeOf } from '../idempotency/core.js'
import { BodyFingerprint } from '../idempotency/fingerprint.js'
import { readBody } from '../idempotency/body.js'
import { credentialOf, missingKeyError, outcomeError, replayableHeaders, type RouteTable, sendOutcome, unavailableError, writeReplay, type IdempotentRoute } from '../idempotency/http.js'
import { parseIdempotencyKey } from '../idempotency/key.js'
import type { ResponseTap } from './exchange.js'
import { downstreamResponseHeaders, type RequestHeaderInfo } from './headers.js'
import type { ProxyCore } from './proxy.js'

export interface GateOptions {
  routes: RouteTable
  core: IdempotencyCore
  /** the session cookie's name: the credential when there is no `authorization` */
  sessionCookie: string
  maxBodyBytes: number
  logger: Logger
}

export class IdempotencyGate {
  readonly routes: RouteTable
  readonly core: IdempotencyCore
  private readonly o: GateOptions

  constructor (o: GateOptions) {
    this.o = o
    this.routes = o.routes
    this.core = o.core
  }

  /** The proxy counted the request in flight; every path out calls `proxy.answered` or `proxy.forward`. */
  handle (proxy: ProxyCore, req: IncomingMessage, res: ServerResponse, method: string, path: string, info: RequestHeaderInfo, route: IdempotentRoute): void {
    const key = parseIdempotencyKey(req.rawHeaders)
    if (key.kind === 'key') {
      this.run(proxy, req, res, method, path, info, route, key.key).catch((err: unknown) => {
        this.o.logger.error({ err }, 'idempotency gate failed')
        this.answer(proxy, req, res, method, path, new ProxyError('CLAYLB_UPSTREAM_FAILED', 'internal error in the idempotency layer'))
      })
      return
    }
    if (key.kind === 'none' && !route.required) {
      // an optional route without a key is an ordinary request
      proxy.forward(req, res, method, path, info, null)
      return
    }
    this.answer(proxy, req, res, method, path, key.kind === 'invalid' ? new ProxyError('CLAYLB_IDEMPOTENCY_KEY_INVALID', key.problem) : missingKeyError(route))
  }

  private answer (proxy: ProxyCore, req: IncomingMessage, res: ServerResponse, method: string, path: string, err: ProxyError): void {
    if (!req.complete) {
      req.resume()
      res.shouldKeepAlive = false
    }
    sendOutcome(res, err, this.core.observer)
    proxy.answered(method, path, err.status)
  }

  private async run (proxy: ProxyCore, req: IncomingMessage, res: ServerResponse, method: string, path: string, info: RequestHeaderInfo, route: IdempotentRoute, key: string): Promise<void> {
    const fp = new BodyFingerprint(method, path, req.headers['content-type'])
    let body: Buffer | null = null
    if (info.hasBody) {
      try {
        body = await readBody(req, this.o.maxBodyBytes, fp)
      } catch (err) {
        if (err instanceof ProxyError) this.answer(proxy, req, res, method, path, err)
        else proxy.answered(method, path, 499)
        return
      }
    }
    const fingerprint = fp.digest(body ?? undefined)
    const scope = scopeOf(credentialOf(req.rawHeaders, this.o.sessionCookie), method, route.match)
    let outcome
    try {
      outcome = await this.core.begin(scope, key, fingerprint)
    } catch (err) {
      this.answer(proxy, req, res, method, path, unavailableError(err))
      return
    }
    switch (outcome.kind) {
      case 'proceed':
        if (res.destroyed) { // the client left while we claimed: nothing was sent anywhere
          this.core.release(outcome.claim).catch(() => {})
          proxy.answered(method, path, 499)
          return
        }
        proxy.forward(req, res, method, path, info, new RecordTap(this.core, outcome.claim, this.o.logger), body)
        return
      case 'replay':
        writeReplay(res, outcome.response)
        proxy.answered(method, path, outcome.response.status)
        return
      default:
        this.answer(proxy, req, res, method, path, outcomeError(outcome))
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
      // executed but not recorded: the claim lapses with its lease; a retry after that may run again
      this.logger.error({ err }, 'idempotency: could not store the response')
    }
  }

  onError (_status: number, sent: boolean): void {
    // sent: the upstream may have acted on it, so retries must not run it again blindly
    const p = sent ? this.core.markUnknown(this.claim) : this.core.release(this.claim)
    p.catch((err: unknown) => this.logger.error({ err }, 'idempotency: could not settle the claim'))
  }
}

