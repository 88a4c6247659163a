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

/** The answer's JSON body and its status (any status: problem+json answers are JSON too). */
export async function json<T = Record<string, unknown>> (url: string, opts: Parameters<typeof req>[1] = {}): Promise<T & { _status: number }> {
  const r = await req(url, opts)
  return { ...parseBody(r, `${opts.method ?? 'GET'} ${url}`), _status: r.status } as T & { _status: number }
}

/** The JSON body of a 2xx answer; anything else fails saying what came instead (not a TypeError later). */
export async function okJson<T = Record<string, unknown>> (url: string, opts: Parameters<typeof req>[1] = {}): Promise<T> {
  const r = await req(url, opts)
  const what = `${opts.method ?? 'GET'} ${url}`
  if (r.status < 200 || r.status > 299) throw new Error(`expected a 2xx from ${what}, got ${r.status}: ${r.body.slice(0, 500)}`)
  return parseBody(r, what) as T
}

function parseBody (r: Reply, what: string): Record<string, unknown> {
  try {
    return JSON.parse(r.body) as Record<string, unknown>
  } catch {
    throw new Error(`expected JSON from ${what}, got ${r.status} ${String(r.headers['content-type'] ?? '')}: ${r.body.slice(0, 500)}`)
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
