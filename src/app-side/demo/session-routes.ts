/**
 * @module demo/session-routes
 * The session routes of the demo app, on the worker context's session API.
 */
import type { WorkerContext } from '../worker/context.js'
import type { DemoRoute } from './router.js'
import { sendJson } from './reply.js'

export function sessionRoutes (ctx: WorkerContext): DemoRoute[] {
  return [
    {
      method: 'GET',
      path: '/session',
      async handle (req, res) {
        const s = await ctx.session(req, res)
        sendJson(res, 200, s.all())
      },
    },
    {
      method: 'POST',
      path: '/session/counter',
      async handle (req, res) {
        req.resume()
        const s = await ctx.session(req, res)
        sendJson(res, 200, { count: await s.increment('count'), worker: ctx.id })
      },
    },
  ]
}
