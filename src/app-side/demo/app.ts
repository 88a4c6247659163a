/**
 * @module demo/app
 * The bundled demo app (`workers.app: builtin:demo`), the load-test target. A worker factory: it is
 * given the WorkerContext and returns the request handler. Routes are rows of a table; add yours
 * to the list below.
 */
import type { RequestHandler, WorkerContext } from '../worker/context.js'
import { createRouter, type DemoRoute } from './router.js'
import { loadTestRoutes } from './load-test-routes.js'
import { faultRoutes, withFaults } from './fault-routes.js'
import { sessionRoutes } from './session-routes.js'
import { orderRoutes } from './order-routes.js'

export function createApp (ctx: WorkerContext): RequestHandler {
  const faults = ctx.config.workers.faults
  const routes: DemoRoute[] = [
    ...loadTestRoutes(ctx),
    ...sessionRoutes(ctx),
    ...orderRoutes(ctx),
    ...(faults ? faultRoutes : []),
  ]
  // connect to Redis now, in the background, rather than on the first session request
  void ctx.redis()
  const router = createRouter(routes)
  return faults ? withFaults(router) : router
}

export default createApp
