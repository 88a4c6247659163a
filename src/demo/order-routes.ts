/**
 * @module demo/order-routes
 * `POST /orders` creates an order from the JSON body and counts the execution in Redis;
 * `GET /orders/count` says how many orders were ever executed. The count is what the idempotency
 * tests read: it rises once per real execution, whichever worker and claylb instance ran it.
 *
 * With `workers.faults: true`, `x-demo-delay-ms: N` answers N ms after the order was created and
 * `x-demo-fault: die-after-create` SIGKILLs the worker after creating the order, before answering;
 * `x-demo-fault: reset-mid-body` sends the head and half of the answer, then resets the connection.
 */
import { randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import type { WorkerContext } from '../workers/context.js'
import { toStateError, toWriteError, whenConnected } from '../redis/index.js'
import type { DemoRoute } from './router.js'
import { sendJson } from './reply.js'
import { cutMidBody, wantsResetMidBody } from './fault-routes.js'

const MAX_ORDER_BYTES = 1024 * 1024
const MAX_DELAY_MS = 300_000

export function orderRoutes (ctx: WorkerContext): DemoRoute[] {
  const countKey = `${ctx.config.redis.keyPrefix}demo:{orders}:count`
  const faults = ctx.config.workers.faults
  return [
    {
      method: 'POST',
      path: '/orders',
      async handle (req, res) {
        let body: unknown
        try {
          body = JSON.parse((await readBody(req)).toString('utf8') || '{}')
        } catch {
          return sendJson(res, 400, { error: 'the body must be a JSON object of at most 1 MiB' })
        }
        if (body === null || typeof body !== 'object' || Array.isArray(body)) return sendJson(res, 400, { error: 'the body must be a JSON object' })
        const redis = await ctx.redis()
        // not connected: refused before anything is sent, a 503 that is safe to retry (a worker's first
        // order waits, bounded, for the connection its client is still making)
        await whenConnected(redis, 'orders')
        try {
          await redis.incr(countKey)
        } catch (err) {
          // sent and the reply lost: the order may exist, so the answer must not invite a retry
          throw toWriteError(err, 'orders')
        }
        if (faults && req.headers['x-demo-fault'] === 'die-after-create') process.kill(process.pid, 'SIGKILL')
        const delay = faults ? Math.min(MAX_DELAY_MS, Number(req.headers['x-demo-delay-ms'] ?? 0) || 0) : 0
        if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay))
        const order = { id: randomUUID(), worker: ctx.id, createdAt: new Date().toISOString(), ...body }
        if (faults && wantsResetMidBody(req)) cutMidBody(res)
        res.setHeader('location', `/orders/${order.id}`)
        sendJson(res, 201, order)
      },
    },
    {
      method: 'GET',
      path: '/orders/count',
      async handle (_req, res) {
        let count: string | null
        try {
          count = await (await ctx.redis()).get(countKey)
        } catch (err) {
          throw toStateError(err, 'orders')
        }
        sendJson(res, 200, { count: Number(count ?? 0) })
      },
    },
  ]
}

function readBody (req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    req.on('data', (c: Buffer) => {
      size += c.length
      if (size > MAX_ORDER_BYTES) { req.destroy(); reject(new Error('too large')) } else chunks.push(c)
    })
    req.once('end', () => resolve(Buffer.concat(chunks, size)))
    req.once('error', reject)
  })
}
