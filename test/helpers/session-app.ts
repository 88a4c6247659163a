/**
 * A plain node:http app using the session API, for the store's tests (in-process, real Redis).
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { ProxyError, sendProblem } from '../../src/shared/errors.js'
import { createSessionStore, type SessionStoreOptions } from '../../src/app-side/session/index.js'
import { req, type Reply } from './http.js'

export const SECRET = 'test-secret-0123456789-abcdefghijklmnop'
export const OLD_SECRET = 'old-secret-0123456789-abcdefghijklmnopq'

export interface SessionApp { url: string, gate: Gate, close (): Promise<void> }

/**
 * Where requests marked `hold=1` wait after loading their session, until the test opens it: a race
 * ordered by the test (load, then whatever the test does meanwhile, then save), never by sleeps.
 */
export class Gate {
  #arrived = 0
  #watchers: Array<{ n: number, resolve: () => void }> = []
  #opened!: Promise<void>
  #open!: () => void
  constructor () { this.#close() }

  /** the app: count this request in and wait for the gate to open */
  pass (): Promise<void> {
    this.#arrived++
    this.#watchers = this.#watchers.filter((w) => this.#arrived >= w.n ? (w.resolve(), false) : true)
    return this.#opened
  }

  /** resolves once `n` requests wait at the gate */
  arrived (n: number): Promise<void> {
    if (this.#arrived >= n) return Promise.resolve()
    return new Promise((resolve) => this.#watchers.push({ n, resolve }))
  }

  /** let every waiting request go on; the gate then closes again for the next ones */
  open (): void {
    this.#open()
    this.#close()
  }

  #close (): void {
    this.#arrived = 0
    this.#opened = new Promise((resolve) => { this.#open = resolve })
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * GET /session → data · POST /counter → { count } · PUT /field/NAME?value=V&delayMs=N (load, wait, set)
 * DELETE /field/NAME?delayMs=N · POST /logout · POST /login?keep=a,b&fields=N (regenerate, set user and
 * fields f0…f<N-1>) · GET /plain. `hold=1` on any of them: wait at `gate` after loading the session.
 */
export async function startSessionApp (o: Omit<SessionStoreOptions, 'secrets'> & { secrets?: string[] }): Promise<SessionApp> {
  const store = createSessionStore({ secrets: [SECRET], ...o })
  const gate = new Gate()
  const server = http.createServer((request, res) => {
    const u = new URL(request.url!, 'http://x')
    const delay = Number(u.searchParams.get('delayMs') ?? 0)
    const route = `${request.method} ${u.pathname.split('/').slice(0, 2).join('/')}`
    const name = u.pathname.split('/')[2] ?? ''
    const handle = async (): Promise<void> => {
      if (route === 'GET /plain') { res.end('plain'); return }
      const s = await store.session(request, res)
      if (delay) await sleep(delay)
      if (u.searchParams.has('hold')) await gate.pass()
      switch (route) {
        case 'GET /session': break
        case 'POST /counter': {
          const count = await s.increment('count')
          res.setHeader('content-type', 'application/json')
          res.end(JSON.stringify({ count }))
          return
        }
        case 'PUT /field': s.set(name, u.searchParams.get('value') ?? ''); break
        case 'DELETE /field': s.delete(name); break
        case 'POST /logout': await s.destroy(); break
        case 'POST /login': {
          const keep = u.searchParams.get('keep')
          await s.regenerate(keep === null ? {} : { keep: keep ? keep.split(',') : [] })
          s.set('user', 'ada')
          for (let i = 0; i < Number(u.searchParams.get('fields') ?? 0); i++) s.set(`f${i}`, i)
          break
        }
        case 'POST /stream': {
          // a streamed answer: a change before the first byte, and one after it
          s.set('before', 1)
          res.write('a')
          await sleep(20)
          s.set('after', 2)
          res.write('b')
          res.end('c')
          return
        }
        case 'POST /big': s.set('blob', 'x'.repeat(Number(u.searchParams.get('bytes')))); break
        default: res.statusCode = 404; res.end(); return
      }
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify(s.all()))
    }
    handle().catch((err: unknown) => {
      if (err instanceof ProxyError) sendProblem(res, err)
      else { res.statusCode = 500; res.end(String(err)) }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    gate,
    async close () {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
    },
  }
}

/** The sid cookie a reply sets: its `name=value` part, '' when cleared, undefined when untouched. */
export function sidOf (r: Reply, name = 'sid'): string | undefined {
  const raw = r.headers['set-cookie']
  for (const c of [raw ?? []].flat()) {
    const first = c.split(';')[0]!
    if (first.startsWith(`${name}=`)) return first.slice(name.length + 1) === '' ? '' : first
  }
  return undefined
}

export async function call (url: string, method: string, path: string, cookie?: string): Promise<Reply & { data: Record<string, unknown> }> {
  const r = await req(`${url}${path}`, { method, headers: cookie ? { cookie } : {} })
  let data: Record<string, unknown> = {}
  try { data = JSON.parse(r.body) } catch { /* not JSON */ }
  return { ...r, data }
}
