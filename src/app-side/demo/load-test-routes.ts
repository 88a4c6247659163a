/**
 * @module demo/load-test-routes
 * The stateless routes: who answered, health, and httpbin-style helpers a load tester points at.
 */
import { pipeline } from 'node:stream'
import type { ServerResponse } from 'node:http'
import type { WorkerContext } from '../worker/context.js'
import type { DemoRoute } from './router.js'
import { queryParam } from './router.js'
import { intParam, sendJson } from './reply.js'

const MAX_DELAY_MS = 300_000
const MAX_BYTES = 256 * 1024 * 1024
const MAX_CHUNKS = 100_000
const FILL = Buffer.alloc(64 * 1024, 'claylb ')

export function loadTestRoutes (ctx: WorkerContext): DemoRoute[] {
  const whoami = JSON.stringify({ worker: ctx.id, pid: process.pid })
  return [
    {
      method: 'GET',
      path: '/',
      handle (_req, res) {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': whoami.length })
        res.end(whoami)
      },
    },
    {
      method: 'GET',
      path: '/healthz',
      handle (_req, res) { sendJson(res, 200, { status: 'ok' }) },
    },
    {
      method: 'GET',
      path: '/delay/:ms',
      handle (req, res, p) {
        const ms = intParam(p['ms'], 0, MAX_DELAY_MS)
        if (ms === undefined) return sendJson(res, 400, { error: `ms must be an integer from 0 to ${MAX_DELAY_MS}` })
        const t = setTimeout(() => sendJson(res, 200, { delayedMs: ms, worker: ctx.id }), ms)
        req.once('close', () => { if (!res.writableEnded) clearTimeout(t) })
      },
    },
    {
      method: 'GET',
      path: '/status/:code',
      handle (_req, res, p) {
        const code = intParam(p['code'], 200, 599)
        if (code === undefined) return sendJson(res, 400, { error: 'code must be an integer from 200 to 599' })
        if (code === 204 || code === 304) {
          res.writeHead(code)
          res.end()
        } else {
          sendJson(res, code, { status: code, worker: ctx.id })
        }
      },
    },
    {
      method: 'GET',
      path: '/bytes/:n',
      handle (_req, res, p) {
        const n = intParam(p['n'], 0, MAX_BYTES)
        if (n === undefined) return sendJson(res, 400, { error: `n must be an integer from 0 to ${MAX_BYTES}` })
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': n })
        writeBytes(res, n)
      },
    },
    {
      method: 'POST',
      path: '/echo',
      handle (req, res) {
        const headers: Record<string, string> = { 'content-type': req.headers['content-type'] ?? 'application/octet-stream' }
        if (req.headers['content-length'] !== undefined) headers['content-length'] = req.headers['content-length']
        res.writeHead(200, headers)
        pipeline(req, res, () => {})
      },
    },
    {
      method: 'GET',
      path: '/stream/:n',
      handle (req, res, p) {
        const n = intParam(p['n'], 0, MAX_CHUNKS)
        if (n === undefined) return sendJson(res, 400, { error: `n must be an integer from 0 to ${MAX_CHUNKS}` })
        const interval = intParam(queryParam(req, 'intervalMs') ?? '0', 0, 10_000) ?? 0
        res.writeHead(200, { 'content-type': 'application/x-ndjson' })
        streamChunks(res, n, interval, ctx.id)
      },
    },
  ]
}

function writeBytes (res: ServerResponse, left: number): void {
  while (left > 0) {
    const n = Math.min(left, FILL.length)
    left -= n
    if (!res.write(n === FILL.length ? FILL : FILL.subarray(0, n))) {
      if (left > 0) res.once('drain', () => writeBytes(res, left))
      else res.end()
      return
    }
  }
  res.end()
}

/** n chunks, each written on its own turn of the event loop so it leaves as its own chunk */
function streamChunks (res: ServerResponse, n: number, intervalMs: number, worker: string): void {
  let i = 0
  const next = (): void => {
    if (res.destroyed) return
    if (i === n) {
      res.end()
      return
    }
    const ok = res.write(`{"chunk":${i++},"of":${n},"worker":"${worker}"}\n`)
    if (!ok) res.once('drain', schedule)
    else schedule()
  }
  const schedule = (): void => { if (intervalMs > 0) setTimeout(next, intervalMs); else setImmediate(next) }
  next()
}
