/**
 * @module idempotency/express
 * Express middleware (4 and 5). Put it after your body parser (`express.json()`): the parsed body is
 * fingerprinted by value; with no parser before it the raw body is read, fingerprinted and left on
 * `req.body` as a Buffer. Structural types only, so Express stays an optional peer dependency.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { sendProblem } from '../errors.js'
import { BodyFingerprint, fingerprintValue } from './fingerprint.js'
import { writeReplay } from './http.js'
import { captureResponse, IdempotencyEngine, readBody, type IdempotencyOptions } from './middleware.js'

interface ExpressRequest extends IncomingMessage {
  body?: unknown
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
    engine.decide(req.rawHeaders, route, async () => {
      if (req._body === true || req.readableEnded) return fingerprintValue(method, url, req.body)
      const fp = new BodyFingerprint(method, url, req.headers['content-type'])
      const body = await readBody(req, engine.maxBodyBytes, fp)
      req.body = body
      return fp.digest(body)
    }).then((d) => {
      switch (d.kind) {
        case 'pass': return next()
        case 'proceed':
          captureResponse(engine, res, d.claim)
          return next()
        case 'replay': return writeReplay(res, d.response)
        default: return sendProblem(res, d.error)
      }
    }, next)
  }
}
