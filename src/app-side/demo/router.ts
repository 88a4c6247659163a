/**
 * @module demo/router
 * The demo app's routes are a table: `{ method, path: '/delay/:ms', handle }`. Other modules add
 * their own rows (sessions, orders) to the list in app.ts.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { RequestHandler } from '../worker/context.js'
import { sendJson } from './reply.js'

export type Params = Record<string, string>

export interface DemoRoute {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE' | 'PATCH'
  /** segments starting with `:` are parameters */
  path: string
  handle (req: IncomingMessage, res: ServerResponse, params: Params): void | Promise<void>
}

interface Compiled { route: DemoRoute, parts: string[] }

export function createRouter (routes: readonly DemoRoute[]): RequestHandler {
  const compiled: Compiled[] = routes.map((route) => ({ route, parts: route.path.split('/') }))
  return (req, res) => {
    const url = req.url ?? '/'
    const q = url.indexOf('?')
    const parts = (q < 0 ? url : url.slice(0, q)).split('/')
    const method = req.method === 'HEAD' ? 'GET' : req.method
    let allowed: string[] | undefined
    for (const c of compiled) {
      const params = match(c.parts, parts)
      if (params === undefined) continue
      if (c.route.method !== method) {
        (allowed ??= []).push(c.route.method)
        continue
      }
      return c.route.handle(req, res, params)
    }
    req.resume()
    if (allowed !== undefined) {
      res.setHeader('allow', allowed.join(', '))
      sendJson(res, 405, { error: 'method not allowed' })
    } else {
      sendJson(res, 404, { error: 'not found' })
    }
    return undefined
  }
}

function match (pattern: string[], path: string[]): Params | undefined {
  if (pattern.length !== path.length) return undefined
  let params: Params | undefined
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i]!
    if (p.charCodeAt(0) === 58 /* : */) (params ??= {})[p.slice(1)] = decodeURIComponent(path[i]!)
    else if (p !== path[i]) return undefined
  }
  return params ?? {}
}

/** `?name=value` of a request, or undefined; only parsed when a route asks */
export function queryParam (req: IncomingMessage, name: string): string | undefined {
  const url = req.url ?? ''
  const q = url.indexOf('?')
  return q < 0 ? undefined : new URLSearchParams(url.slice(q + 1)).get(name) ?? undefined
}
