/**
 * Raw-socket client: sends exact bytes (no HTTP client normalising them) and returns what came back.
 */
import type net from 'node:net'
import { openClient } from './transport.js'

export function rawExchange (port: number, bytes: string | Buffer, opts: { waitMs?: number } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = openClient(port).socket
    let out = ''
    const done = (): void => { clearTimeout(timer); s.destroy(); resolve(out) }
    const timer = setTimeout(done, opts.waitMs ?? 3000)
    s.setEncoding('latin1')
    s.on('data', (d: string) => { out += d })
    s.on('end', done)
    s.on('close', done)
    s.on('error', (err: NodeJS.ErrnoException) => { if (err.code === 'ECONNRESET') done(); else reject(err) })
    s.write(bytes)
  })
}

export function statusOf (answer: string): number {
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(answer)
  return m ? Number(m[1]) : 0
}

export function bodyOf (answer: string): string {
  const i = answer.indexOf('\r\n\r\n')
  return i < 0 ? '' : answer.slice(i + 4)
}

/** One response as it came off the wire (latin1, so every byte is one character). */
export interface RawResponse {
  status: number
  /** lower-case names; repeated names joined with ", " */
  headers: Record<string, string>
  /** the status line and header lines, without the blank line */
  head: string
  /** the body after de-chunking */
  body: string
}

/**
 * Cut the first complete response off `buf`. `closed`: the peer closed, so a response without
 * a length ends here. Returns undefined while the response is still incomplete.
 */
export function takeResponse (buf: string, closed = false): { response: RawResponse, rest: string } | undefined {
  const end = buf.indexOf('\r\n\r\n')
  if (end < 0) return undefined
  const head = buf.slice(0, end)
  const lines = head.split('\r\n')
  const status = statusOf(lines[0]!)
  const headers: Record<string, string> = {}
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':')
    const name = line.slice(0, i).toLowerCase()
    const value = line.slice(i + 1).trim()
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value
  }
  let at = end + 4
  if (status < 200 || status === 204 || status === 304) return { response: { status, headers, head, body: '' }, rest: buf.slice(at) }
  if (headers['transfer-encoding']?.toLowerCase() === 'chunked') {
    let body = ''
    for (;;) {
      const eol = buf.indexOf('\r\n', at)
      if (eol < 0) return undefined
      const size = parseInt(buf.slice(at, eol), 16)
      if (size === 0) {
        const trailerEnd = buf.indexOf('\r\n\r\n', eol)
        if (trailerEnd < 0) return undefined
        return { response: { status, headers, head, body }, rest: buf.slice(trailerEnd + 4) }
      }
      if (buf.length < eol + 2 + size + 2) return undefined
      body += buf.slice(eol + 2, eol + 2 + size)
      at = eol + 2 + size + 2
    }
  }
  if (headers['content-length'] !== undefined) {
    const n = Number(headers['content-length'])
    if (buf.length < at + n) return undefined
    return { response: { status, headers, head, body: buf.slice(at, at + n) }, rest: buf.slice(at + n) }
  }
  if (!closed) return undefined
  return { response: { status, headers, head, body: buf.slice(at) }, rest: '' }
}

/** Every complete response in a transcript (e.g. what rawExchange returned), in order. */
export function parseResponses (transcript: string): RawResponse[] {
  const out: RawResponse[] = []
  let rest = transcript
  for (let r = takeResponse(rest, true); r !== undefined; r = takeResponse(rest, true)) {
    out.push(r.response)
    rest = r.rest
  }
  return out
}

/**
 * A client connection that stays open: write bytes whenever, read responses as they arrive.
 * Reading can be paused (`pause()`) to play a client that never reads.
 */
export class RawClient {
  readonly socket: net.Socket
  /** everything received so far and not yet taken as a response */
  buffer = ''
  /** bytes received in all */
  received = 0
  closed = false
  /** the socket error that ended the connection, if one did */
  error: NodeJS.ErrnoException | undefined
  private waiters = new Set<() => void>()

  /** the TCP socket under `socket` (the same one on plain TCP) */
  private readonly raw: net.Socket

  private constructor (socket: net.Socket, raw: net.Socket) {
    this.socket = socket
    this.raw = raw
    socket.setEncoding('latin1')
    socket.on('data', (d: string) => { this.buffer += d; this.received += d.length; this.wake() })
    socket.on('error', (err: NodeJS.ErrnoException) => { this.error = err })
    socket.on('close', () => { this.closed = true; this.wake() })
  }

  /** to claylb's port over plain TCP, or over TLS when the suite runs over TLS (helpers/transport) */
  static connect (port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const { socket: s, raw, ready } = openClient(port)
      s.once('error', reject)
      s.once(ready, () => { s.off('error', reject); resolve(new RawClient(s, raw)) })
    })
  }

  write (bytes: string | Buffer): Promise<void> {
    return new Promise((resolve, reject) => {
      this.socket.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes, (err) => err ? reject(err) : resolve())
    })
  }

  private wake (): void { for (const w of this.waiters) w() }

  /** Wait until `pred` holds (checked on every event), or the timeout; returns whether it held. */
  waitFor (pred: () => boolean, timeoutMs: number): Promise<boolean> {
    if (pred()) return Promise.resolve(true)
    return new Promise((resolve) => {
      const check = (): void => { if (pred()) finish(true) }
      const finish = (ok: boolean): void => { clearTimeout(t); this.waiters.delete(check); resolve(ok) }
      const t = setTimeout(() => finish(pred()), timeoutMs)
      this.waiters.add(check)
    })
  }

  /** The next complete response, or undefined when the connection closed (or timed out) first. */
  async readResponse (timeoutMs = 5000): Promise<RawResponse | undefined> {
    let taken: ReturnType<typeof takeResponse>
    await this.waitFor(() => (taken = takeResponse(this.buffer, this.closed)) !== undefined || this.closed, timeoutMs)
    taken ??= takeResponse(this.buffer, this.closed)
    if (taken === undefined) return undefined
    this.buffer = taken.rest
    return taken.response
  }

  /** Resolves true once the peer closed the connection, false when it is still open after timeoutMs. */
  waitClosed (timeoutMs = 5000): Promise<boolean> {
    return this.waitFor(() => this.closed, timeoutMs)
  }

  /** Stop reading: the kernel buffers fill and the sender sees backpressure. */
  pause (): void { this.socket.pause() }

  destroy (): void { this.socket.destroy() }

  /** Close abruptly with a TCP RST (an abort as a crashing client does it). */
  reset (): void {
    this.raw.resetAndDestroy()
    if (this.raw !== this.socket) this.socket.destroy()
  }
}

/** Parse a problem+json body, or throw with the text that was not one. */
export function problemOf (r: RawResponse): { type: string, title: string, status: number, detail: string } {
  if (!/^application\/problem\+json/.test(r.headers['content-type'] ?? '')) throw new Error(`not problem+json: ${r.head}\n${r.body}`)
  return JSON.parse(r.body)
}
