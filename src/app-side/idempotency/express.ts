/**
 * @module idempotency/express
 * Express middleware (4 and 5). Put it after your body parser (`express.json()`): the parsed body is
 * fingerprinted by value, or exactly from its bytes when the parser kept them as `req.rawBody`
 * (`express.json({ verify: (req, res, buf) => { req.rawBody = buf } })`: numbers past 2^53 and
 * duplicate member names are only seen that way). With no parser before it the raw body is read,
 * fingerprinted and left on `req.body` as a Buffer. A claimed request carries `req.idempotency`
 * (`id`, `fence`, `key`). Structural types only, so Express stays an optional peer dependency.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { sendProblem } from '../../shared/errors.js'
import { BodyFingerprint, fingerprintValue } from '../../shared/idempotency/fingerprint.js'
import { writeReplay } from '../../shared/idempotency/http.js'
import { captureResponse, IdempotencyEngine, readBody, requestIdempotency, type IdempotencyOptions, type RequestIdempotency } from './middleware.js'
import { bodyAlreadyParsed } from '../../shared/node-internals.js'

interface ExpressRequest extends IncomingMessage {
  body?: unknown
  /** the body's bytes, when the body parser's `verify` kept them */
  rawBody?: unknown
  idempotency?: RequestIdempotency
  originalUrl?: string
  baseUrl?: string
  route?: { path?: unknown }
  /** set by body-parser once it consumed the body */
  _body?: boolean
}
type Next = (err?: unknown) => void

export function idempotencyMiddleware (options: IdempotencyOptions = {}): (req: ExpressRequest, res: ServerResponse, next: Next) => void {
  const engine = new IdempotencyEngine(options)
  return (req, res, next) => {
    const method = req.method ?? 'GET'
    const url = req.originalUrl ?? req.url ?? '/'
    const pattern = req.route && typeof req.route.path === 'string' ? `${req.baseUrl ?? ''}${req.route.path}` : undefined
    const route = engine.route(method, url, pattern)
    if (route === undefined) return next()
    engine.decide(req.rawHeaders, url, route, async (target) => {
      const contentType = req.headers['content-type']
      if (Buffer.isBuffer(req.rawBody)) return engine.fingerprintBytes(route, method, target, contentType, req.rawBody)
      engine.checkBodySize(route, req.headers['content-length'])
      if (bodyAlreadyParsed(req)) return fingerprintValue(method, target, contentType, req.body)
      const fp = new BodyFingerprint(method, target, contentType)
      const body = await readBody(req, route.maxBodyBytes, fp)
      req.body = body
      return fp.digest(body)
    }).then((d) => {
      switch (d.kind) {
        case 'pass': return next()
        case 'proceed':
          req.idempotency = requestIdempotency(d.claim, req.rawHeaders)
          captureResponse(engine, res, d.claim)
          return next()
        case 'replay': return writeReplay(res, d.response)
        default: return sendProblem(res, d.error)
      }
    }, next)
  }
}
