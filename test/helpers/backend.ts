/**
 * Real backends on port 0 that count what they receive.
 */
import http, { type IncomingMessage, type ServerResponse, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface Backend {
  url: string
  port: number
  server: Server
  /** requests whose headers arrived */
  count: number
  /** the last requests' method, url and headers */
  seen: Array<{ method: string, url: string, headers: http.IncomingHttpHeaders, rawHeaders: string[] }>
  close (): Promise<void>
}

export type Handler = (req: IncomingMessage, res: ServerResponse, b: Backend) => void

export const echoName = (name: string): Handler => (req, res) => {
  req.resume()
  req.on('end', () => {
    res.setHeader('x-backend', name)
    res.end(name)
  })
}

export async function startBackend (handler: Handler = echoName('backend'), opts: http.ServerOptions = {}): Promise<Backend> {
  const b = { count: 0, seen: [] } as unknown as Backend
  const server = http.createServer(opts, (req, res) => {
    b.count++
    if (b.seen.length < 1000) b.seen.push({ method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders })
    handler(req, res, b)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  b.server = server
  b.port = port
  b.url = `http://127.0.0.1:${port}`
  b.close = () => new Promise<void>((resolve) => {
    server.closeAllConnections()
    server.close(() => resolve())
  })
  return b
}

export async function startBackends (names: string[]): Promise<Backend[]> {
  return Promise.all(names.map((n) => startBackend(echoName(n))))
}

/** A port with nothing listening on it (bound, then released). */
export async function deadPort (): Promise<number> {
  const s = http.createServer()
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  const port = (s.address() as AddressInfo).port
  await new Promise<void>((resolve) => s.close(() => resolve()))
  return port
}
