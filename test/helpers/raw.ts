/**
 * Raw-socket client: sends exact bytes (no HTTP client normalising them) and returns what came back.
 */
import net from 'node:net'

export function rawExchange (port: number, bytes: string | Buffer, opts: { waitMs?: number } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1')
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
