/**
 * @module admin/admin
 * The admin listener (loopback by default): health, readiness, status, and routes other modules
 * register (metrics, drain, reload). Mutating routes need the bearer token when one is configured.
 */
import http, { type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { timingSafeEqual } from 'node:crypto'

export type AdminHandler = (req: IncomingMessage, res: ServerResponse, params: Record<string, string>) => void | Promise<void>

interface Route { method: string, parts: string[], handler: AdminHandler, mutating: boolean }

export class AdminServer {
  private readonly routes: Route[] = []
  readonly server: Server

  constructor (private readonly token: string | undefined) {
    this.server = http.createServer((req, res) => { void this.dispatch(req, res) })
  }

  /** `path` may hold `:name` segments. POST routes count as mutating. */
  route (method: string, path: string, handler: AdminHandler): void {
    this.routes.push({ method, parts: path.split('/'), handler, mutating: method !== 'GET' && method !== 'HEAD' })
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
      if (r.mutating && !this.authorized(req)) {
        sendJson(res, 401, { error: 'unauthorized', detail: 'this admin route needs authorization: Bearer <admin.token>' })
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

  private authorized (req: IncomingMessage): boolean {
    if (this.token === undefined) return true
    const given = Buffer.from(req.headers.authorization ?? '')
    const want = Buffer.from(`Bearer ${this.token}`)
    return given.length === want.length && timingSafeEqual(given, want)
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
