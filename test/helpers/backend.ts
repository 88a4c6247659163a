/**
 * Real backends on port 0 that count what they receive.
 */
import http, { type IncomingMessage, type ServerResponse, type Server } from 'node:http'
import net, { type AddressInfo } from 'node:net'

export interface Backend {
  url: string
  port: number
  server: Server
  /** requests whose headers arrived (claylb's own health checks are not counted here) */
  count: number
  /** claylb health checks received (user-agent claylb-health-check) */
  checks: number
  /** the last requests' method, url and headers */
  seen: Array<{ method: string, url: string, headers: http.IncomingHttpHeaders, rawHeaders: string[], body?: string }>
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
  const b = { count: 0, checks: 0, seen: [] } as unknown as Backend
  const server = http.createServer(opts, (req, res) => {
    if (req.headers['user-agent'] === 'claylb-health-check') {
      b.checks++
      handler(req, res, b)
      return
    }
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
/**
 * A port where nothing listens (connection refused). Taken below the kernel's ephemeral range, where
 * no `listen(0)` of a parallel test can land on it later; checked to refuse before it is returned.
 */
export async function deadPort (): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 10_000)
    const refused = await new Promise<boolean>((resolve) => {
      const c = net.connect(port, '127.0.0.1')
      c.once('connect', () => { c.destroy(); resolve(false) })
      c.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'))
    })
    if (refused) return port
  }
}

/**
 * A handler that reads the whole body into the request's `seen` entry (as latin1) and answers
 * `got <n>` (after `x-delay-ms` when the request has it); so a test can assert the exact bytes an
 * upstream received as a body.
 */
export const recordBody: Handler = (req, res, b) => {
  const entry = b.seen[b.seen.length - 1]
  const chunks: Buffer[] = []
  req.on('data', (c: Buffer) => chunks.push(c))
  req.on('error', () => {})
  req.on('end', () => {
    const body = Buffer.concat(chunks)
    if (entry) entry.body = body.toString('latin1')
    // x-delay-ms: answer late, to keep a request in flight
    setTimeout(() => res.end(`got ${body.length}`), Number(req.headers['x-delay-ms'] ?? 0))
  })
}

/**
 * A TCP tap in front of a port: every connection is piped through and the bytes sent towards the
 * target are recorded per connection. It shows what an upstream received on the wire, byte for byte,
 * including anything a parser would see as a second request.
 */
export interface Wiretap {
  url: string
  port: number
  /** bytes sent to the target, one string (latin1) per connection, in accept order */
  connections: string[]
  /** every connection's bytes in arrival order (so `text().slice(n)` is what came after n bytes) */
  text (): string
  close (): Promise<void>
}

export async function startWiretap (targetPort: number): Promise<Wiretap> {
  const connections: string[] = []
  let all = ''
  const sockets = new Set<net.Socket>()
  const server = net.createServer((client) => {
    const i = connections.push('') - 1
    const upstream = net.connect(targetPort, '127.0.0.1')
    sockets.add(client).add(upstream)
    client.on('data', (d: Buffer) => { const s = d.toString('latin1'); connections[i] += s; all += s })
    client.pipe(upstream).pipe(client)
    const end = (): void => { client.destroy(); upstream.destroy(); sockets.delete(client); sockets.delete(upstream) }
    client.on('error', end).on('close', end)
    upstream.on('error', end).on('close', end)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    connections,
    text: () => all,
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy()
      server.close(() => resolve())
    }),
  }
}

/**
 * An upstream that answers every request head with exact bytes (which an http.Server would refuse to
 * write: bare LF, NUL, obs-fold in a response header). Counts request heads it received; `answer`
 * may pick the bytes from the request head.
 */
export interface RawUpstream { url: string, port: number, count: number, close (): Promise<void> }

export async function startRawUpstream (answer: string | ((head: string) => string)): Promise<RawUpstream> {
  const up = { count: 0 } as RawUpstream
  const l = await listenRaw((s) => {
    let buf = ''
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1')
      const end = buf.indexOf('\r\n\r\n')
      if (end < 0) return
      const head = buf.slice(0, end)
      buf = ''
      up.count++
      s.write(Buffer.from(typeof answer === 'string' ? answer : answer(head), 'latin1'))
    })
  })
  return Object.assign(up, l)
}

/** A TCP server on 127.0.0.1 handing each connection to `onSocket`; `close` destroys the open ones first. */
export async function listenRaw (onSocket: (s: net.Socket) => void): Promise<{ port: number, url: string, close (): Promise<void> }> {
  const sockets = new Set<net.Socket>()
  const server = net.createServer((s) => {
    sockets.add(s)
    s.on('error', () => s.destroy()).on('close', () => sockets.delete(s))
    onSocket(s)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  return { port, url: `http://127.0.0.1:${port}`, close: () => new Promise<void>((resolve) => { for (const s of sockets) s.destroy(); server.close(() => resolve()) }) }
}
