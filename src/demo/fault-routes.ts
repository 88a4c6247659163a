/**
 * @module demo/fault-routes
 * Opt-in fault injection for chaos runs (`workers.faults: true`): `?fail=0.1` on any route answers
 * 500 to 10% of requests, `/hang` never answers, `/drop` closes the connection without an answer.
 */
import type { RequestHandler } from '../workers/context.js'
import type { DemoRoute } from './router.js'
import { queryParam } from './router.js'
import { sendJson } from './reply.js'

export const faultRoutes: DemoRoute[] = [
  { method: 'GET', path: '/hang', handle () { /* hold the request until the client or a timeout gives up */ } },
  { method: 'GET', path: '/drop', handle (req) { req.socket.destroy() } },
]

/** wraps the router: `?fail=P` answers 500 with probability P (0..1) before any route runs */
export function withFailureRate (next: RequestHandler): RequestHandler {
  return (req, res) => {
    if (req.url !== undefined && req.url.includes('fail=')) {
      const p = Number(queryParam(req, 'fail'))
      if (p > 0 && Math.random() < p) {
        req.resume()
        sendJson(res, 500, { error: 'injected fault', fail: p })
        return undefined
      }
    }
    return next(req, res)
  }
}
