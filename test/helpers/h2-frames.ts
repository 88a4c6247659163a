/**
 * HTTP/2 frames written by hand (RFC 9113 §4, HPACK literals of RFC 7541 §6.2.2), for attacks a
 * well-behaved client library will not send: resets in a flood, endless CONTINUATION, header lists
 * past the peer's limit.
 */
import tls from 'node:tls'

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1')
export const TYPE = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 } as const
export const FLAG = { END_STREAM: 1, ACK: 1, END_HEADERS: 4 } as const

export function frame (type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(9)
  h.writeUIntBE(payload.length, 0, 3)
  h[3] = type
  h[4] = flags
  h.writeUInt32BE(stream & 0x7fffffff, 5)
  return Buffer.concat([h, payload])
}

function hpackInt (n: number, prefixBits: number, first: number): Buffer {
  const max = (1 << prefixBits) - 1
  if (n < max) return Buffer.from([first | n])
  const out = [first | max]
  n -= max
  while (n >= 128) { out.push((n & 0x7f) | 0x80); n >>= 7 }
  out.push(n)
  return Buffer.from(out)
}

/** a literal header field without indexing, new name (no Huffman) */
export function literal (name: string, value: string): Buffer {
  return Buffer.concat([Buffer.from([0]), hpackInt(name.length, 7, 0), Buffer.from(name, 'latin1'), hpackInt(value.length, 7, 0), Buffer.from(value, 'latin1')])
}

/** a literal header field with incremental indexing, new name (no Huffman): it enters the dynamic table */
export function literalIndexed (name: string, value: string): Buffer {
  const b = literal(name, value)
  b[0] = 0x40
  return b
}

/** :method GET, :scheme https, :path, :authority as a header block */
export function requestBlock (path: string, authority = 'a.test', extra: Buffer[] = []): Buffer {
  // 0x82 :method GET, 0x87 :scheme https (static table indexes 2 and 7)
  return Buffer.concat([Buffer.from([0x82, 0x87]), literal(':path', path), literal(':authority', authority), ...extra])
}

/** A raw HTTP/2 connection over TLS (ALPN h2): write frames, read the frames that come back. */
export class RawH2 {
  readonly frames: Array<{ type: number, flags: number, stream: number, payload: Buffer }> = []
  closed = false
  private buf = Buffer.alloc(0)

  private constructor (readonly socket: tls.TLSSocket) {
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d])
      while (this.buf.length >= 9) {
        const len = this.buf.readUIntBE(0, 3)
        if (this.buf.length < 9 + len) break
        this.frames.push({ type: this.buf[3]!, flags: this.buf[4]!, stream: this.buf.readUInt32BE(5) & 0x7fffffff, payload: this.buf.subarray(9, 9 + len) })
        this.buf = this.buf.subarray(9 + len)
      }
    })
    socket.on('error', () => {})
    socket.on('close', () => { this.closed = true })
  }

  static connect (port: number): Promise<RawH2> {
    return new Promise((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, servername: 'a.test', rejectUnauthorized: false, ALPNProtocols: ['h2'] }, () => {
        if (s.alpnProtocol !== 'h2') {
          reject(new Error(`ALPN chose ${String(s.alpnProtocol)}, not h2`))
          return
        }
        const c = new RawH2(s)
        s.write(Buffer.concat([PREFACE, frame(TYPE.SETTINGS, 0, 0)]))
        resolve(c)
      })
      s.once('error', reject)
    })
  }

  /** resolves false when the socket would not take more (the peer stopped reading, or it closed) */
  write (b: Buffer): Promise<boolean> {
    if (this.closed || this.socket.destroyed) return Promise.resolve(false)
    return new Promise((resolve) => this.socket.write(b, (err) => resolve(err == null)))
  }

  goaway (): { lastStream: number, code: number } | undefined {
    const g = this.frames.find((f) => f.type === TYPE.GOAWAY)
    return g === undefined ? undefined : { lastStream: g.payload.readUInt32BE(0) & 0x7fffffff, code: g.payload.readUInt32BE(4) }
  }

  destroy (): void { this.socket.destroy() }
}
