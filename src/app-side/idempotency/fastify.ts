/**
 * @module idempotency/fastify
 * Fastify plugin (v4, v5): a `preHandler` hook decides (after Fastify parsed the body, which is
 * fingerprinted by value), an `onSend` hook stores the answer before Fastify writes it. A streamed
 * payload cannot be replayed: it is stored as the too-large tombstone. Registered without
 * encapsulation, so it guards every route of the instance it is registered on; `routes` narrows it.
 * A claimed request carries `request.idempotency` (`id`, `fence`, `key`). Structural types only, so
 * Fastify stays an optional peer dependency.
 */
import type { IncomingMessage } from 'node:http'
import type { Claim } from '../../shared/idempotency/core.js'
import { fingerprintValue } from '../../shared/idempotency/fingerprint.js'
import { IdempotencyEngine, problemParts, requestIdempotency, type IdempotencyOptions, type RequestIdempotency } from './middleware.js'

interface FastifyRequest { method: string, url: string, body?: unknown, rawBody?: unknown, idempotency?: RequestIdempotency, raw: IncomingMessage, routeOptions?: { url?: string } }
interface FastifyReply {
  statusCode: number
  code (status: number): FastifyReply
  header (name: string, value: string | string[]): FastifyReply
  getHeaders (): Record<string, number | string | string[] | undefined>
  send (payload?: unknown): FastifyReply
}
interface FastifyInstance {
  addHook (name: 'preHandler', fn: (req: FastifyRequest, reply: FastifyReply) => Promise<unknown>): unknown
  addHook (name: 'onSend', fn: (req: FastifyRequest, reply: FastifyReply, payload: unknown) => Promise<unknown>): unknown
  addHook (name: 'onResponse', fn: (req: FastifyRequest, reply: FastifyReply) => Promise<unknown>): unknown
}

function headerObject (flat: readonly string[]): Record<string, string | string[]> {
  const o: Record<string, string | string[]> = {}
  for (let i = 0; i < flat.length; i += 2) {
    const name = flat[i]!.toLowerCase()
    const prev = o[name]
    o[name] = prev === undefined ? flat[i + 1]! : ([] as string[]).concat(prev, flat[i + 1]!)
  }
  return o
}

function payloadBytes (payload: unknown): Buffer | null {
  if (payload === undefined || payload === null) return Buffer.alloc(0)
  if (typeof payload === 'string') return Buffer.from(payload)
  if (Buffer.isBuffer(payload)) return payload
  return null // a stream: not replayable
}

export function idempotencyPlugin (fastify: FastifyInstance, options: IdempotencyOptions, done: (err?: Error) => void): void {
  const engine = new IdempotencyEngine(options)
  const claims = new WeakMap<FastifyRequest, Claim>()

  fastify.addHook('preHandler', async (request, reply) => {
    const route = engine.route(request.method, request.url, request.routeOptions?.url)
    if (route === undefined) return
    const d = await engine.decide(request.raw.rawHeaders, request.url, route, (target) => {
      const contentType = request.raw.headers['content-type']
      // exact when the bytes were kept (e.g. the fastify-raw-body plugin), else the parsed value
      if (Buffer.isBuffer(request.rawBody)) return engine.fingerprintBytes(route, request.method, target, contentType, request.rawBody)
      engine.checkBodySize(route, request.raw.headers['content-length'])
      return fingerprintValue(request.method, target, contentType, request.body)
    })
    switch (d.kind) {
      case 'pass': return
      case 'proceed':
        claims.set(request, d.claim)
        request.idempotency = requestIdempotency(d.claim, request.raw.rawHeaders)
        return
      case 'replay': {
        const headers = headerObject(d.response.headers)
        reply.code(d.response.status)
        for (const [k, v] of Object.entries(headers)) reply.header(k, v)
        reply.header('idempotent-replayed', 'true')
        return reply.send(d.response.body)
      }
      default: {
        const p = problemParts(d.error)
        reply.code(p.status)
        for (const [k, v] of Object.entries(p.headers)) reply.header(k, v)
        return reply.send(Buffer.from(p.body))
      }
    }
  })

  fastify.addHook('onSend', async (request, reply, payload) => {
    const claim = claims.get(request)
    if (claim === undefined) return payload
    claims.delete(request)
    const headers: string[] = []
    for (const [k, v] of Object.entries(reply.getHeaders())) {
      if (v === undefined) continue
      for (const x of ([] as Array<string | number>).concat(v)) headers.push(k, String(x))
    }
    await engine.settle(claim, reply.statusCode, headers, payloadBytes(payload))
    return payload
  })

  fastify.addHook('onResponse', async (request) => {
    // answered without onSend (the connection broke): the outcome is unknown for one lease
    const claim = claims.get(request)
    if (claim !== undefined) {
      claims.delete(request)
      engine.markUnknown(claim)
    }
  })
  done()
}

// like fastify-plugin: the hooks apply to the instance the plugin is registered on, not a child scope
;(idempotencyPlugin as unknown as Record<symbol, boolean>)[Symbol.for('skip-override')] = true
