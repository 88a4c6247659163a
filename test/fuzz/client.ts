/**
 * The fuzzer's clients of claylb's TLS listener: an HTTP/1.x connection on raw bytes (ALPN http/1.1,
 * so nothing tidies what is sent or received) and an HTTP/2 session (node:http2, ALPN h2) whose
 * streams are recorded as they arrive (raw header lists, body, trailers, a reset).
 */
import http2 from 'node:http2'
import net from 'node:net'
import tls from 'node:tls'
import type { Fields } from './wire.js'

const TLS = { host: '127.0.0.1', servername: 'a.test', rejectUnauthorized: false }

export class H1Client {
  buffer = ''
  closed = false
  /** resolves the one pending waitFor (a client has one reader) */
  private wakeOne: (() => void) | null = null

  /** `raw`: the TCP socket under the TLS one (a RST is sent on it) */
  private constructor (readonly socket: tls.TLSSocket, private readonly raw: net.Socket) {
    socket.setEncoding('latin1')
    socket.on('data', (d: string) => { this.buffer += d; this.wake() })
    socket.on('error', () => {})
    socket.on('close', () => { this.closed = true; this.wake() })
  }

  static connect (port: number): Promise<H1Client> {
    return new Promise((resolve, reject) => {
      const raw = net.connect(port, TLS.host)
      const s = tls.connect({ ...TLS, socket: raw, ALPNProtocols: ['http/1.1'] })
      s.once('error', reject)
      s.once('secureConnect', () => { s.off('error', reject); resolve(new H1Client(s, raw)) })
    })
  }

  write (bytes: string): Promise<void> {
    return new Promise((resolve) => { this.socket.write(bytes, 'latin1', () => resolve()) })
  }

  private wake (): void {
    const w = this.wakeOne
    this.wakeOne = null
    w?.()
  }

  /** wait until `pred` holds (checked after every byte or close) or `ms` pass; whether it held */
  async waitFor (pred: () => boolean, ms: number): Promise<boolean> {
    const until = Date.now() + ms
    while (!pred()) {
      const left = until - Date.now()
      if (left <= 0) return false
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left)
        this.wakeOne = () => { clearTimeout(t); resolve() }
      })
    }
    return true
  }

  /** a hang-up: a FIN, or a TCP RST under the TLS session */
  abort (how: 'fin' | 'rst'): void {
    if (how === 'fin') this.socket.end()
    else {
      this.raw.resetAndDestroy()
      this.socket.destroy()
    }
  }

  /** both sockets: a TCP socket left under a destroyed TLS one keeps Node's exit spinning in its handle cleanup */
  destroy (): void {
    this.socket.destroy()
    this.raw.destroy()
  }
}

/** What one HTTP/2 stream received. */
export interface H2Stream {
  status: number
  /** the final answer's header list, pseudo-headers excluded */
  headers: Fields
  interim: Array<{ status: number, headers: Fields }>
  body: string
  trailers: Fields
  /** the stream was reset or the session failed before the answer ended */
  error: string | undefined
}

const pairs = (raw: string[] | undefined): Fields => {
  const out: Fields = []
  for (let i = 0; raw !== undefined && i < raw.length; i += 2) if (!raw[i]!.startsWith(':')) out.push([raw[i]!, raw[i + 1]!])
  return out
}

export function h2Connect (port: number): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`https://127.0.0.1:${port}`, { ...TLS, ALPNProtocols: ['h2'] })
    session.once('error', reject)
    session.once('connect', () => { session.off('error', reject); session.on('error', () => {}); resolve(session) })
  })
}

/**
 * One stream: `fields` in order (a name repeated is sent repeated), then `body` and `trailers`.
 * Resolves when the stream ended or was reset, or after `ms` (`error: 'no answer'`).
 */
export function h2Exchange (session: http2.ClientHttp2Session, pseudo: Record<string, string>, fields: Fields, body: string,
  trailers: Fields, ms: number, abort: boolean): Promise<H2Stream> {
  const headers: http2.OutgoingHttpHeaders = { ...pseudo }
  for (const [n, v] of fields) {
    const prev = headers[n]
    headers[n] = prev === undefined ? v : [...([] as string[]).concat(prev as string | string[]), v]
  }
  const out: H2Stream = { status: 0, headers: [], interim: [], body: '', trailers: [], error: undefined }
  return new Promise((resolve) => {
    let stream: http2.ClientHttp2Stream
    try {
      stream = session.request(headers, { endStream: body === '' && trailers.length === 0, waitForTrailers: trailers.length > 0 })
    } catch (err) {
      out.error = `request refused by node:http2: ${(err as Error).message}`
      resolve(out)
      return
    }
    const t = setTimeout(() => { out.error ??= 'no answer'; stream.close(); resolve(out) }, ms)
    stream.on('headers', (h, _f, raw?: string[]) => out.interim.push({ status: Number(h[':status']), headers: pairs(raw) }))
    stream.on('response', (h, _f, raw?: string[]) => { out.status = Number(h[':status']); out.headers = pairs(raw) })
    stream.on('trailers', (_h, _f, raw?: string[]) => { out.trailers = pairs(raw) })
    stream.on('wantTrailers', () => stream.sendTrailers(Object.fromEntries(trailers)))
    stream.setEncoding('latin1')
    stream.on('data', (d: string) => { out.body += d })
    stream.on('error', (err: Error) => { out.error ??= err.message })
    stream.on('close', () => {
      clearTimeout(t)
      if (stream.rstCode !== undefined && stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR && !abort) out.error ??= `stream reset (code ${stream.rstCode})`
      resolve(out)
    })
    if (body !== '' || trailers.length > 0) stream.end(body === '' ? undefined : Buffer.from(body, 'latin1'))
    if (abort) stream.close(http2.constants.NGHTTP2_CANCEL)
  })
}
