/**
 * @module control/admin/admin
 * The admin listener (loopback by default): health, readiness, status, and routes other modules
 * register (metrics, drain, reload). Who may call what: /healthz and /readyz are open (probes); the
 * other reads need a token with `admin.protectReads` (/metrics: also its own `admin.metricsToken`);
 * state-changing routes need `admin.token` when one is set, and never run for a cross-site browser
 * request (a page on another origin cannot make the operator's browser reload or drain).
 */
import http, { type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { timingSafeEqual } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import { ProxyError, sendProblem } from '../../shared/errors.js'

export type AdminHandler = (req: IncomingMessage, res: ServerResponse, params: Record<string, string>) => void | Promise<void>

/** open: anyone (probes); read: a token with protectReads; metrics: read, or the metrics token; mutate: the token, same-site */
export type AdminAccess = 'open' | 'read' | 'metrics' | 'mutate'

export interface AdminAuth {
  token?: string | undefined
  metricsToken?: string | undefined
  protectReads?: boolean | undefined
}

interface Route { method: string, parts: string[], handler: AdminHandler, access: AdminAccess }

export class AdminServer {
  private readonly routes: Route[] = []
  readonly server: Server

  constructor (private readonly auth: AdminAuth) {
    this.server = http.createServer((req, res) => { void this.dispatch(req, res) })
  }

  /** where it listens, as a URL */
  url (): string {
    const a = this.server.address() as AddressInfo
    return `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`
  }

  /** `path` may hold `:name` segments. By default GET routes are reads and the others mutate. */
  route (method: string, path: string, handler: AdminHandler, access: AdminAccess = method === 'GET' || method === 'HEAD' ? 'read' : 'mutate'): void {
    this.routes.push({ method, parts: path.split('/'), handler, access })
  }

  private async dispatch (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]!.split('/')
    let allowed: string[] | undefined
    for (const r of this.routes) {
      const params = match(r.parts, path)
      if (params === undefined) continue
      if (r.method !== req.method && !(r.method === 'GET' && req.method === 'HEAD')) {
        (allowed ??= []).push(r.method)
        continue
      }
      if (r.access === 'mutate' && crossSite(req)) {
        sendProblem(res, new ProxyError('CLAYLB_ADMIN_CROSS_SITE', 'a state-changing admin call from a page of another origin is refused (Origin / Sec-Fetch-Site not same-origin)'))
        return
      }
      const tokens = this.tokensFor(r.access)
      if (tokens.length > 0 && !tokens.some((t) => bearer(req, t))) {
        res.setHeader('www-authenticate', 'Bearer realm="claylb-admin"')
        sendProblem(res, new ProxyError('CLAYLB_ADMIN_UNAUTHORIZED', `${req.method} ${path.join('/')} needs authorization: Bearer <${r.access === 'metrics' ? 'admin.metricsToken or admin.token' : 'admin.token'}>`))
        return
      }
      try {
        await r.handler(req, res, params)
      } catch (err) {
        if (!res.headersSent) sendJson(res, 500, { error: 'internal', detail: (err as Error).message })
        else res.destroy()
      }
      return
    }
    if (allowed) {
      res.setHeader('allow', allowed.join(', '))
      sendJson(res, 405, { error: 'method not allowed' })
      return
    }
    sendJson(res, 404, { error: 'not found' })
  }

  /** the tokens any one of which opens a route; [] when it is open */
  private tokensFor (access: AdminAccess): string[] {
    const { token, metricsToken, protectReads } = this.auth
    const own = token === undefined ? [] : [token]
    switch (access) {
      case 'open': return []
      case 'mutate': return own
      case 'read': return protectReads === true ? own : []
      // a metrics token protects /metrics by itself; the admin token opens it too
      case 'metrics': return metricsToken !== undefined ? [metricsToken, ...own] : protectReads === true ? own : []
    }
  }
}

function bearer (req: IncomingMessage, token: string): boolean {
  const given = Buffer.from(req.headers.authorization ?? '')
  const want = Buffer.from(`Bearer ${token}`)
  return given.length === want.length && timingSafeEqual(given, want)
}

/**
 * A browser names where a request comes from: Sec-Fetch-Site (anything but same-origin, or none for
 * a typed URL) or an Origin that is not this host. curl, Prometheus and kubectl send neither.
 */
function crossSite (req: IncomingMessage): boolean {
  const site = req.headers['sec-fetch-site']
  if (site !== undefined && site !== 'same-origin' && site !== 'none') return true
  const origin = req.headers.origin
  if (origin === undefined) return false
  try {
    return new URL(origin).host !== req.headers.host
  } catch {
    return true // "null" (a sandboxed or file: page) or garbage
  }
}

function match (parts: string[], path: string[]): Record<string, string> | undefined {
  if (parts.length !== path.length) return undefined
  const params: Record<string, string> = {}
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]!
    const v = path[i]!
    if (p.startsWith(':')) params[p.slice(1)] = decodeURIComponent(v)
    else if (p !== v) return undefined
  }
  return params
}

export function sendJson (res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' })
  res.end(text)
}
