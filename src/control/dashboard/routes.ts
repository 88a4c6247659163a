/**
 * @module control/dashboard/routes
 * The dashboard on the admin port (HAProxy's stats page, Traefik's and Envoy's dashboards):
 * `GET /dashboard` and its assets are a static page holding no data, open like /healthz; the data
 * comes from `GET /dashboard/events`, a server-sent event stream that is an admin read like
 * /status (with `admin.protectReads`, the page asks for the token and sends it as a Bearer header:
 * it reads the stream with fetch, which EventSource cannot do). Assets are served from the package,
 * never a CDN.
 */
import { readFileSync, existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { ServerResponse } from 'node:http'
import { sendJson, type AdminServer } from '../admin/admin.js'
import type { DashboardFeed } from './feed.js'

const TYPES: Record<string, string> = { html: 'text/html; charset=utf-8', js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8', png: 'image/png' }
/** bytes a stream may have unsent before its page is taken for gone (a tick is a few kB) */
const MAX_BUFFERED = 1 << 20
/** the page's files; nothing else is served from the folder */
const ASSETS = ['index.html', 'dashboard.js', 'dashboard.css']

/**
 * Where the assets are: in the source tree of a checkout (so an edit shows without a copy step, and
 * a build with tsc alone serves them), else copied beside the compiled module by `npm run build`
 * (the npm package and the image ship dist/ only).
 */
function assetDir (): string {
  for (const rel of ['../../../src/control/dashboard/assets/', './assets/']) {
    const dir = fileURLToPath(new URL(rel, import.meta.url))
    if (existsSync(`${dir}index.html`)) return dir
  }
  throw new Error('the dashboard assets are missing (src/control/dashboard/assets, or dist/control/dashboard/assets after npm run build)')
}

export function registerDashboardRoutes (admin: AdminServer, feed: DashboardFeed): void {
  const cache = new Map<string, Buffer>()
  const serve = (res: ServerResponse, name: string): void => {
    let body = cache.get(name)
    if (body === undefined) cache.set(name, body = readFileSync(assetDir() + name))
    res.writeHead(200, {
      'content-type': TYPES[name.slice(name.lastIndexOf('.') + 1)] ?? 'application/octet-stream',
      'content-length': body.length,
      'cache-control': 'no-cache',
      // the page loads only its own files and talks only to this port
      'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'",
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
    })
    res.end(body)
  }
  admin.route('GET', '/dashboard', (_req, res) => serve(res, 'index.html'), 'open')
  admin.route('GET', '/dashboard/assets/:file', (_req, res, { file }) => {
    if (!ASSETS.includes(file!)) return sendJson(res, 404, { error: 'not found' })
    serve(res, file!)
  }, 'open')
  admin.route('GET', '/dashboard/events', async (req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-accel-buffering': 'no' })
    let open = true
    let started = false
    const send = (event: string, data: unknown): void => {
      if (!open) return
      // a page that stopped reading (a tab asleep, a dead network) is cut off rather than buffered
      // for: it reconnects and gets the history again
      if (res.writableLength > MAX_BUFFERED) {
        res.destroy()
        return
      }
      res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`)
    }
    // a tick made while the history is being sent is in that history already
    const fn = (event: 'tick', data: unknown): void => { if (started) send(event, data) }
    const close = (): void => { open = false; feed.unsubscribe(fn) }
    req.on('close', close)
    res.on('error', close)
    const first = await feed.subscribe(fn)
    send('init', { intervalMs: feed.o.intervalMs, points: feed.o.points, history: first.history, state: first.state })
    started = true
  })
}
