/**
 * @module idempotency/middleware
 * The idempotency core for a Node server without the proxy: the engine the Express and Fastify
 * adapters share (options → core, routes and the decision flow of decision.ts, the same one the
 * proxy's gate runs), the response recorder, and a plain `node:http` wrapper. The same outcomes,
 * statuses and problem types as at the proxy.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { ProxyError, problemBody, sendProblem } from '../../shared/errors.js'
import { IdempotencyCore, type Claim, type IdempotencyObserver } from '../../shared/idempotency/core.js'
import { readBody } from '../../shared/idempotency/body.js'
import { IdempotencyDecider, type Decision } from '../../shared/idempotency/decision.js'
import { BodyFingerprint } from '../../shared/idempotency/fingerprint.js'
import { keyedBodyTooLarge, replayableHeaders, writeReplay } from '../../shared/idempotency/http.js'
import { MemoryStore } from '../../shared/idempotency/memory-store.js'
import { normalisePath } from '../../shared/idempotency/route-path.js'
import { RouteTable, unsafeRoute, type IdempotentRoute, type RouteSpec } from '../../shared/idempotency/routes.js'
import { defaultScope, ScopeSources } from '../../shared/idempotency/scope.js'
import type { IdempotencyStore } from '../../shared/idempotency/store.js'
import { IDEMPOTENCY_DEFAULTS, MAX_BODY_BYTES, SESSION_DEFAULTS } from '../../shared/defaults.js'

export type { Decision } from '../../shared/idempotency/decision.js'

export interface IdempotencyOptions {
  /** where records live: `new RedisStore(ioredisClient)` to share them between processes; default in memory */
  store?: IdempotencyStore
  /**
   * "METHOD /prefix" routes to guard; default: every POST, PUT, PATCH and DELETE the middleware sees.
   * `upstreamDedupes: true`: your handler dedupes on `req.idempotency.id`, so after an unknown outcome
   * a retry runs the handler again instead of being refused. `caseSensitive: true`: match the path
   * case-sensitively (default: case-insensitively, as Express does).
   */
  routes?: readonly RouteSpec[]
  /** with no `routes`: answer 400 when the key is missing (default false) */
  required?: boolean
  lockSeconds?: number
  ttlSeconds?: number
  maxResponseBytes?: number
  onConcurrent?: 'conflict' | 'wait'
  /** handler statuses that mean "not processed, retry": the key is released, not stored (default [429, 503]) */
  releaseStatuses?: readonly number[]
  /** the session cookie of the default scope (default `sid`) */
  sessionCookie?: string
  /** where a key's scope comes from: the first header present (`cookie:<name>` for one cookie); default `authorization`, then the session cookie */
  scope?: readonly string[]
  /**
   * the largest body of a keyed request (default 1 MiB; a route's own `maxBodyBytes` overrides it):
   * 413 above it. Its JSON is canonicalised to fingerprint it (a large one on a worker thread).
   */
  maxBodyBytes?: number
  observer?: IdempotencyObserver
  /** an answer that could not be recorded yet (it is offered again), or a claim that could not be settled; default: a process warning */
  onError?: (err: unknown) => void
}

/** What a handler learns about its keyed request (`req.idempotency`; Fastify: `request.idempotency`). */
export interface RequestIdempotency {
  /** the record id (the scoped key's hash): dedupe on it in your own storage, with a unique constraint */
  readonly id: string
  /** rises with every claim of the record: a write fenced by it refuses an older owner */
  readonly fence: number
  /** the client's Idempotency-Key */
  readonly key: string
}

export function requestIdempotency (claim: Claim, rawHeaders: readonly string[]): RequestIdempotency {
  let key = ''
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i]!.toLowerCase() === 'idempotency-key') key = rawHeaders[i + 1]!.replace(/^"(.*)"$/, '$1')
  return { id: claim.id, fence: claim.fence, key }
}

const GUARDED = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

const warn = (err: unknown): void => { process.emitWarning(`claylb idempotency: ${(err as Error)?.message ?? String(err)}`, 'ClaylbIdempotencyWarning') }

export class IdempotencyEngine {
  readonly core: IdempotencyCore
  readonly decider: IdempotencyDecider
  readonly maxBodyBytes: number
  readonly onError: (err: unknown) => void
  private readonly routes: RouteTable | null
  private readonly required: boolean

  constructor (o: IdempotencyOptions = {}) {
    const lockSeconds = o.lockSeconds ?? IDEMPOTENCY_DEFAULTS.lockSeconds
    this.core = new IdempotencyCore(o.store ?? new MemoryStore(), {
      leaseMs: lockSeconds * 1000,
      ttlMs: (o.ttlSeconds ?? IDEMPOTENCY_DEFAULTS.ttlSeconds) * 1000,
      maxResponseBytes: o.maxResponseBytes ?? IDEMPOTENCY_DEFAULTS.maxResponseBytes,
      waitMs: o.onConcurrent === 'wait' ? Math.min(10_000, lockSeconds * 1000) : 0,
      ...(o.releaseStatuses ? { releaseStatuses: new Set(o.releaseStatuses) } : {}),
    }, o.observer)
    this.decider = new IdempotencyDecider(this.core, new ScopeSources(o.scope ?? defaultScope(o.sessionCookie ?? SESSION_DEFAULTS.cookie)))
    this.maxBodyBytes = o.maxBodyBytes ?? IDEMPOTENCY_DEFAULTS.maxBodyBytes
    this.routes = o.routes ? new RouteTable(o.routes, this.maxBodyBytes) : null
    this.required = o.required ?? false
    this.onError = o.onError ?? warn
  }

  /** The guarded route of a request, or undefined when the middleware lets it pass untouched. */
  route (method: string, path: string, routePattern?: string): IdempotentRoute | undefined {
    if (this.routes !== null) return this.routes.match(method, path)
    if (!GUARDED.has(method)) return undefined
    const p = routePattern ?? normalisePath(path)
    if (p === null) return unsafeRoute(method)
    const prefix = p.toLowerCase()
    return { match: `${method} ${prefix}`, method, prefix, required: this.required, upstreamDedupes: false, caseSensitive: false, maxBodyBytes: this.maxBodyBytes }
  }

  /** Fingerprint a body whose bytes the framework kept (`rawBody`), after the size check. */
  fingerprintBytes (route: IdempotentRoute, method: string, target: string, contentType: string | undefined, body: Buffer): string | Promise<string> {
    this.checkBodySize(route, body.length)
    const fp = new BodyFingerprint(method, target, contentType)
    fp.update(body)
    return fp.digest(body)
  }

  /** Refuse (413) a keyed body above its route's bound, by its size or its declared Content-Length. */
  checkBodySize (route: IdempotentRoute, size: number | string | undefined): void {
    if (size !== undefined && Number(size) > route.maxBodyBytes) throw keyedBodyTooLarge(route)
  }

  /** Decide for one request; `fingerprint` is computed only when there is a valid key. */
  decide (rawHeaders: readonly string[], path: string, route: IdempotentRoute, fingerprint: (target: string) => string | Promise<string>): Promise<Decision> {
    return this.decider.decide(rawHeaders, path, route, fingerprint)
  }

  /** Store what the handler answered (or the too-large tombstone). Never throws: failures go to `onError`. */
  async settle (claim: Claim, status: number, headers: readonly string[], body: Buffer | null): Promise<void> {
    try {
      if (body === null) await this.core.completeTooLarge(claim, status)
      else await this.core.complete(claim, { status, headers: replayableHeaders(headers), body })
    } catch (err) {
      // offered again in the background; until it lands retries get 409, never a second execution
      this.onError(err)
    }
  }

  /** The client left before the handler answered: the outcome is unknown until it does. */
  markUnknown (claim: Claim): void {
    this.core.markUnknown(claim).catch(this.onError)
  }
}

/** The problem answer as status + headers + body, for adapters that do not write to a ServerResponse. */
export function problemParts (err: ProxyError): { status: number, headers: Record<string, string>, body: string } {
  const headers: Record<string, string> = { 'content-type': 'application/problem+json', 'cache-control': 'no-store' }
  if (err.retryAfter !== undefined) headers['retry-after'] = String(Math.max(0, Math.ceil(err.retryAfter)))
  return { status: err.status, headers, body: problemBody(err.code, err.message) }
}

/** Flatten `res.getHeaders()` (and headers given to writeHead) to [name, value, …]. */
export function flattenHeaders (h: Record<string, number | string | readonly string[] | undefined>): string[] {
  const out: string[] = []
  for (const [name, v] of Object.entries(h)) {
    if (v === undefined) continue
    if (Array.isArray(v)) for (const x of v) out.push(name, String(x))
    else out.push(name, String(v))
  }
  return out
}

type WriteCb = (err?: Error | null) => void

/**
 * Tee a ServerResponse into the record: chunks are recorded up to `maxResponseBytes`, the newest one
 * is held back, and `end` waits for the record to be committed before the last bytes go out, so a
 * retry sent right after the answer replays.
 */
export function captureResponse (engine: IdempotencyEngine, res: ServerResponse, claim: Claim): void {
  const max = engine.core.settings.maxResponseBytes
  const origWrite = res.write.bind(res) as (chunk: Buffer, cb?: WriteCb) => boolean
  const origEnd = res.end.bind(res) as (chunk?: Buffer, cb?: () => void) => ServerResponse
  const origWriteHead = res.writeHead.bind(res) as (...a: unknown[]) => ServerResponse
  let explicit: string[] = []
  let chunks: Buffer[] | null = []
  let size = 0
  let held: Buffer | null = null
  let ended = false
  const record = (b: Buffer): void => {
    size += b.length
    if (chunks === null) return
    if (size > max) chunks = null
    else chunks.push(b)
  }
  const toBuf = (chunk: unknown, enc: unknown): Buffer | null => {
    if (chunk === undefined || chunk === null || typeof chunk === 'function') return null
    if (Buffer.isBuffer(chunk)) return chunk
    if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
    return Buffer.from(String(chunk), typeof enc === 'string' ? enc as BufferEncoding : 'utf8')
  }
  res.writeHead = function (this: ServerResponse, ...args: unknown[]) {
    const h = args.find((a, i) => i > 0 && typeof a === 'object' && a !== null)
    if (Array.isArray(h)) explicit = h.map(String)
    else if (h !== undefined) explicit = flattenHeaders(h as Record<string, string>)
    return origWriteHead(...args)
  } as typeof res.writeHead
  res.write = function (chunk: unknown, enc?: unknown, cb?: unknown) {
    const b = toBuf(chunk, enc)
    if (b === null || b.length === 0) return true
    record(b)
    const prev = held
    held = b
    const callback = (typeof enc === 'function' ? enc : cb) as WriteCb | undefined
    if (callback) process.nextTick(callback)
    return prev === null ? true : origWrite(prev)
  } as typeof res.write
  res.end = function (chunk?: unknown, enc?: unknown, cb?: unknown) {
    if (ended) return res
    ended = true
    const b = toBuf(chunk, enc)
    if (b !== null) record(b)
    const callback = (typeof chunk === 'function' ? chunk : typeof enc === 'function' ? enc : cb) as (() => void) | undefined
    const headers = [...flattenHeaders(res.getHeaders()), ...explicit]
    const body = chunks === null ? null : Buffer.concat(chunks, size)
    engine.settle(claim, res.statusCode, headers, body).then(() => {
      if (held !== null) origWrite(held)
      origEnd(b ?? undefined, callback)
    })
    return res
  } as typeof res.end
  res.once('close', () => {
    // the client left before the handler answered: its outcome is unknown until it does
    if (!ended) engine.markUnknown(claim)
  })
}

export { readBody }

export type NodeHandler = (req: IncomingMessage & { body?: Buffer, idempotency?: RequestIdempotency }, res: ServerResponse, body: Buffer) => void

/**
 * Wrap a plain `node:http` handler. The wrapper reads the request body (it has to, to fingerprint it
 * before the handler runs) and hands it over as the third argument and as `req.body`.
 */
export function withIdempotency (handler: NodeHandler, options: IdempotencyOptions = {}): (req: IncomingMessage, res: ServerResponse) => void {
  const engine = new IdempotencyEngine(options)
  return (req, res) => {
    const method = req.method ?? 'GET'
    const route = engine.route(method, req.url ?? '/')
    if (route === undefined) {
      readBody(req, MAX_BODY_BYTES, new BodyFingerprint(method, '', undefined)).then((body) => handler(Object.assign(req, { body }), res, body), () => sendProblem(res, new ProxyError('CLAYLB_BODY_TOO_LARGE', 'body too large')))
      return
    }
    let body: Buffer = Buffer.alloc(0)
    engine.decide(req.rawHeaders, req.url ?? '/', route, async (target) => {
      engine.checkBodySize(route, req.headers['content-length'])
      const fp = new BodyFingerprint(method, target, req.headers['content-type'])
      body = await readBody(req, route.maxBodyBytes, fp)
      return fp.digest(body)
    }).then(async (d) => {
      if (d.kind === 'pass' || d.kind === 'proceed') {
        if (d.kind === 'pass' && !req.readableEnded) body = await readBody(req, MAX_BODY_BYTES, new BodyFingerprint(method, '', undefined))
        if (d.kind === 'proceed') {
          captureResponse(engine, res, d.claim)
          handler(Object.assign(req, { body, idempotency: requestIdempotency(d.claim, req.rawHeaders) }), res, body)
        } else handler(Object.assign(req, { body }), res, body)
      } else if (d.kind === 'replay') writeReplay(res, d.response)
      else sendProblem(res, d.error)
    }).catch((err: unknown) => sendProblem(res, err instanceof ProxyError ? err : new ProxyError('CLAYLB_BAD_REQUEST', String(err))))
  }
}
