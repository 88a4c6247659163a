/**
 * A client that sends a request and resets at once can be gone before claylb reads its address: over
 * TLS the connection is accepted only after the handshake, by which time the request and the RST may
 * both have arrived (getpeername fails: `socket.remoteAddress` is undefined). Such a connection has
 * nobody to answer; it is closed unread, never forwarded with an empty `x-forwarded-for` (found by the
 * differential fuzzer: `x-forwarded-for: ""` reached the upstream).
 */
import t from 'tap'
import net from 'node:net'
import tls from 'node:tls'
import { startBackend, type Backend } from '../helpers/backend.js'
import { startClaylb } from '../helpers/claylb.js'
import { Pki } from '../helpers/pki.js'

const pki = new Pki()
const leaf = pki.issue(['a.test'])
const backend: Backend = await startBackend()
const lb = await startClaylb({
  args: ['--upstream', backend.url],
  config: { listen: { processes: 1, tls: { cert: leaf.cert, key: leaf.key } }, log: { access: false } },
})
t.teardown(async () => { await lb.stop('SIGKILL'); await backend.close() })
const port = Number(new URL(lb.url).port)

/** the request goes out right after the handshake, a TCP RST under the TLS session right behind it */
function sendAndReset (path: string): Promise<void> {
  return new Promise((resolve) => {
    const raw = net.connect(port, '127.0.0.1')
    raw.on('error', () => resolve())
    const s = tls.connect({ socket: raw, servername: 'a.test', ca: pki.caPem, ALPNProtocols: ['http/1.1'] })
    s.on('error', () => resolve())
    s.on('secureConnect', () => {
      s.write(`GET ${path} HTTP/1.1\r\nHost: a.test\r\n\r\n`, () => {
        raw.resetAndDestroy()
        s.destroy()
        resolve()
      })
    })
  })
}

t.test('a request whose client reset before it was accepted never reaches the upstream without its address', async (t) => {
  for (let i = 0; i < 200; i += 10) await Promise.all(Array.from({ length: 10 }, (_, j) => sendAndReset(`/gone/${i + j}`)))
  // one ordinary request after them all, answered: every earlier one that was forwarded was seen first
  await new Promise<void>((resolve, reject) => {
    const s = tls.connect({ port, host: '127.0.0.1', servername: 'a.test', ca: pki.caPem }, () => {
      s.write('GET /last HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n')
    })
    s.on('data', () => {})
    s.on('end', () => resolve())
    s.on('error', reject)
  })
  const seen = backend.seen
  t.ok(seen.some((r) => r.url === '/last'), 'the last request was served')
  t.comment(`${seen.length - 1} of the reset requests were forwarded`)
  const bad = seen.filter((r) => r.headers['x-forwarded-for'] !== '127.0.0.1')
  t.same(bad.map((r) => [r.url, r.headers['x-forwarded-for']]), [], 'every forwarded request carries the client address')
})
