/**
 * @module demo/fault-routes
 * Opt-in fault injection for chaos runs (`workers.faults: true`): `?fail=0.1` on any route answers
 * 500 to 10% of requests, `/hang` never answers, `/drop` closes the connection without an answer,
 * `x-demo-fault: reset-mid-body` cuts the connection in the middle of a body (see withResetMidBody).
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { RequestHandler } from '../worker/context.js'
import type { DemoRoute } from './router.js'
import { queryParam } from './router.js'
import { sendJson } from './reply.js'

/** the `x-demo-fault` value that cuts a body in the middle */
export const RESET_MID_BODY = 'reset-mid-body'

export const faultRoutes: DemoRoute[] = [
  { method: 'GET', path: '/hang', handle () { /* hold the request until the client or a timeout gives up */ } },
  { method: 'GET', path: '/drop', handle (req) { req.socket.destroy() } },
]

/** wraps the router: the faults any route may be asked for, before the route runs */
export function withFaults (next: RequestHandler): RequestHandler {
  return withFailureRate(withResetMidBody(next))
}

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

/**
 * wraps the router: `x-demo-fault: reset-mid-body` on `GET /bytes/:n` and `GET /stream/:n` sends the
 * head and half of the first write, then resets; on `POST /echo` it resets once the first chunk of the
 * request body was read, before any answer. (`POST /orders` cuts its answer itself, after the order ran.)
 */
export function withResetMidBody (next: RequestHandler): RequestHandler {
  return (req, res) => {
    if (wantsResetMidBody(req)) {
      const url = req.url ?? ''
      if (req.method === 'GET' && /^\/(?:bytes|stream)\//.test(url)) cutMidBody(res)
      else if (req.method === 'POST' && /^\/echo(?:$|\?)/.test(url)) resetMidRequest(req)
    }
    return next(req, res)
  }
}

/** true when this request asks for a reset mid-body */
export const wantsResetMidBody = (req: IncomingMessage): boolean => req.headers['x-demo-fault'] === RESET_MID_BODY

/**
 * Arms `res`: its first write (or end) goes out with half of its bytes, after the head; once those
 * reached the socket the connection is reset. Nothing after that is sent, so the answer is never whole.
 */
export function cutMidBody (res: ServerResponse): void {
  let cut = false
  const write = res.write.bind(res) as (chunk: Buffer, cb: () => void) => boolean
  const cutWith = (chunk: unknown): false => {
    if (!cut) {
      cut = true
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk instanceof Uint8Array ? Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength) : Buffer.alloc(0)
      write(bytes.subarray(0, bytes.length >> 1), () => resetConnection(res.socket))
    }
    return false // never 'drain': a writer waiting for it stops here
  }
  res.write = ((chunk: unknown) => cutWith(chunk)) as ServerResponse['write']
  res.end = ((chunk?: unknown) => {
    cutWith(typeof chunk === 'function' ? undefined : chunk)
    return res
  }) as ServerResponse['end']
}

/** Resets the connection once the first chunk of the request body was read (no answer was started). */
function resetMidRequest (req: IncomingMessage): void {
  req.once('data', () => resetConnection(req.socket))
}

/**
 * An RST where the socket has one (TCP); a worker listens on a Unix socket, which has none, so there
 * it is a plain close (the peer sees the connection end in the middle of the message either way).
 */
export function resetConnection (socket: Socket | null): void {
  if (socket === null || socket.destroyed) return
  try {
    socket.resetAndDestroy()
  } catch {
    socket.destroy() // ERR_INVALID_HANDLE_TYPE: not TCP
  }
}
