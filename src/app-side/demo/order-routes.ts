/**
 * @module demo/order-routes
 * `POST /orders` creates an order from the JSON body and counts the execution in Redis;
 * `GET /orders/count` says how many orders were ever executed. The count is what the idempotency
 * tests read: it rises once per real execution, whichever worker and claylb instance ran it.
 *
 * It dedupes on `claylb-idempotency-id` the way an app should (`upstreamDedupes: true`): the order
 * and the id are written in one Redis script, so a repeat of the id (claylb re-forwarding a request
 * whose outcome it lost) returns the original order, same id and `createdAt`, and never counts again.
 *
 * With `workers.faults: true`, `x-demo-delay-ms: N` answers N ms after the order was created and
 * `x-demo-fault: die-after-create` SIGKILLs the worker after creating the order, before answering;
 * `x-demo-fault: reset-mid-body` sends the head and half of the answer, then resets the connection.
 */
import { randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import type { WorkerContext } from '../worker/context.js'
import { defineScript, toStateError, type RedisClient, type Script } from '../../shared/redis/index.js'
import type { DemoRoute } from './router.js'
import { sendJson } from './reply.js'
import { cutMidBody, wantsResetMidBody } from './fault-routes.js'

const MAX_ORDER_BYTES = 1024 * 1024
const MAX_DELAY_MS = 300_000

// KEYS[1] count, KEYS[2] the order of one idempotency id · ARGV order JSON, keep ms, '1' when there is an id
// → {1, order} created, {0, order} the id's original order
const CREATE_ORDER = `
if ARGV[3] == '1' then
  local existing = redis.call('GET', KEYS[2])
  if existing then return {0, existing} end
end
redis.call('INCR', KEYS[1])
if ARGV[3] == '1' then redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2]) end
return {1, ARGV[1]}
`

export function orderRoutes (ctx: WorkerContext): DemoRoute[] {
  const countKey = `${ctx.config.redis.keyPrefix}demo:{orders}:count`
  // one hash tag with the count: the script touches one slot on Redis Cluster
  const byIdKey = (id: string): string => `${ctx.config.redis.keyPrefix}demo:{orders}:id:${id}`
  // as long as claylb keeps the record, and a day more
  const keepMs = (ctx.config.idempotency.ttlSeconds + 86_400) * 1000
  const faults = ctx.config.workers.faults
  let create: Script<[number, string]> | undefined
  let createOn: RedisClient | undefined
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
        if (createOn !== redis) {
          // not connected: refused before anything is sent, a 503 that is safe to retry (a worker's
          // first order waits, bounded, for the connection its client is still making)
          create = defineScript(redis, 'claylbDemoCreateOrder', 2, CREATE_ORDER, { writes: true })
          createOn = redis
        }
        const idem = req.headers['claylb-idempotency-id']
        const id = typeof idem === 'string' && /^[0-9a-f]{64}$/.test(idem) ? idem : undefined
        // sent and the reply lost: the script throws the 500 state-outcome-unknown (it may have run)
        const draft = JSON.stringify({ id: randomUUID(), worker: ctx.id, createdAt: new Date().toISOString(), ...body })
        const [created, stored] = await create!([countKey, byIdKey(id ?? 'none')], [draft, keepMs, id === undefined ? '0' : '1'])
        if (faults && req.headers['x-demo-fault'] === 'die-after-create') process.kill(process.pid, 'SIGKILL')
        const delay = faults ? Math.min(MAX_DELAY_MS, Number(req.headers['x-demo-delay-ms'] ?? 0) || 0) : 0
        if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay))
        const order = JSON.parse(stored) as { id: string }
        if (created === 0) res.setHeader('x-demo-deduped', 'true')
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
