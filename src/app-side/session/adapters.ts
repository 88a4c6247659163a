/**
 * @module session/adapters
 * Thin adapters: the session becomes `req.session` (Express) or `request.session` (Fastify). Both
 * frameworks write through node's ServerResponse, so saving before the response starts works as in a
 * plain node:http app. A Redis outage answers 503 problem+json before any handler runs.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { ProxyError, sendProblem } from '../../shared/errors.js'
import type { Session } from './session.js'
import type { SessionStore } from './store.js'

/** Express middleware: `app.use(expressSession(store))`, then `req.session`. */
export function expressSession (store: SessionStore) {
  return (req: IncomingMessage & { session?: Session }, res: ServerResponse, next: (err?: unknown) => void): void => {
    store.session(req, res).then((s) => {
      req.session = s
      next()
    }, (err: unknown) => {
      if (err instanceof ProxyError) sendProblem(res, err)
      else next(err)
    })
  }
}

interface FastifyLike {
  decorateRequest (name: string, value: unknown): unknown
  addHook (name: 'onRequest', hook: (request: { raw: IncomingMessage, session?: Session }, reply: { raw: ServerResponse, hijack (): void }) => Promise<void>): unknown
}

/** Fastify plugin: `await app.register(fastifySession(store))`, then `request.session`. */
export function fastifySession (store: SessionStore) {
  const plugin = async (fastify: FastifyLike): Promise<void> => {
    fastify.decorateRequest('session', null)
    fastify.addHook('onRequest', async (request, reply) => {
      try {
        request.session = await store.session(request.raw, reply.raw)
      } catch (err) {
        if (!(err instanceof ProxyError)) throw err
        reply.hijack()
        sendProblem(reply.raw, err)
      }
    })
  }
  // what fastify-plugin does: the decoration and hook apply to the whole app, not an encapsulated child
  return Object.assign(plugin, { [Symbol.for('skip-override')]: true })
}
