/**
 * Client helpers: undici with a private agent per call site, so tests never share keep-alive sockets.
 */
import { Agent, request as undiciRequest } from 'undici'

export const agent = new Agent({ keepAliveTimeout: 1000, connections: 64 })

export interface Reply { status: number, headers: Record<string, string | string[] | undefined>, body: string }

export async function req (url: string, opts: { method?: string, headers?: Record<string, string>, body?: string | Buffer } = {}): Promise<Reply> {
  const r = await undiciRequest(url, { dispatcher: agent, method: (opts.method ?? 'GET') as 'GET', headers: opts.headers, body: opts.body })
  const body = await r.body.text()
  return { status: r.statusCode, headers: r.headers, body }
}

export async function json<T = Record<string, unknown>> (url: string, opts: Parameters<typeof req>[1] = {}): Promise<T & { _status: number }> {
  const r = await req(url, opts)
  return { ...JSON.parse(r.body), _status: r.status }
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
