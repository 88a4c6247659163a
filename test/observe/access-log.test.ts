/**
 * The access log end to end (log.access): what the client saw is what is logged — a 200 whose body
 * the upstream cut is a 200 ended upstream-cut with the bytes that went out, a client that left is
 * client-aborted; every field over HTTP/1.1, HTTP/2 and TLS; the combined format from a trusted
 * forwarder; a file reopened on SIGUSR1 with two proxy processes, no line lost or torn.
 */
import t from 'tap'
import net from 'node:net'
import { mkdtempSync, readFileSync, renameSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startClaylb, type Claylb } from '../helpers/claylb.js'
import { listenRaw, startBackend } from '../helpers/backend.js'
import { req } from '../helpers/http.js'
import { Pki } from '../helpers/pki.js'
import { h2, h2session } from '../helpers/tls-client.js'

const ALL = ['client', 'method', 'host', 'path', 'protocol', 'tls', 'sni', 'status', 'ended', 'bytesIn', 'bytesOut', 'bodyBytesOut', 'ms',
  'upstreamMs', 'upstream', 'attempts', 'pool', 'route', 'requestId', 'traceId', 'userAgent', 'referer', 'idempotency', 'replayed', 'rateLimit']

const requestLine = (c: Claylb, path: string): Promise<Record<string, unknown>> => c.waitForLog((l) => l['msg'] === 'request' && l['path'] === path)

/** raw bytes to the proxy; everything it sends back until it closes (or `stopAfter` bytes, then this side resets) */
function rawGet (url: string, path: string, stopAfter = Infinity): Promise<Buffer> {
  const { port } = new URL(url)
  return new Promise((resolve) => {
    const chunks: Buffer[] = []
    let n = 0
    const s = net.connect(Number(port), '127.0.0.1', () => s.write(`GET ${path} HTTP/1.1\r\nhost: a.test\r\n\r\n`))
    s.on('data', (d) => {
      chunks.push(d)
      n += d.length
      if (n >= stopAfter) s.resetAndDestroy()
    })
    s.on('error', () => {})
    s.on('close', () => resolve(Buffer.concat(chunks)))
  })
}

t.test('HTTP/1.1: every field; the cut answer and the client that left are told as the client saw them', async (t) => {
  const KB32 = 32 * 1024
  let sawNever = (): void => {}
  const never = new Promise<void>((resolve) => { sawNever = resolve })
  const up = await listenRaw((s) => {
    let buf = ''
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1')
      if (!buf.includes('\r\n\r\n')) return
      const path = buf.split(' ')[1]
      buf = ''
      if (path === '/cut') {
        // a 200 head and 32 KiB of a 100 KB body, then a reset
        s.write(`HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n`)
        s.write(Buffer.alloc(KB32, 97), () => setImmediate(() => s.resetAndDestroy()))
      } else if (path === '/stall') {
        s.write(`HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n${'x'.repeat(1000)}`) // then nothing more
      } else if (path === '/never') {
        sawNever() // and no answer at all
      } else {
        s.write(`HTTP/1.1 201 Created\r\ncontent-length: 5\r\nx-request-id: upstream-says\r\n\r\nhello`)
      }
    })
  })
  t.teardown(() => up.close())
  const c = await startClaylb({ args: ['--upstream', up.url], config: { listen: { processes: 1 }, trustedProxies: ['127.0.0.1/32'], log: { access: { fields: ALL } } } })
  t.teardown(() => c.stop())

  const r = await req(`${c.url}/ok?x=1`, { headers: { 'user-agent': 'ua/1', referer: 'https://from/', 'x-forwarded-for': '203.0.113.9, 127.0.0.1' } })
  t.equal(r.status, 201)
  const id = r.headers['x-request-id']
  t.match(id, /^[0-9a-f]{16}-[0-9a-z]+$/, 'the client gets the id claylb made (the upstream\'s echo is not doubled)')
  const ok = await requestLine(c, '/ok?x=1')
  t.match(ok, {
    client: '203.0.113.9', method: 'GET', path: '/ok?x=1', protocol: 'HTTP/1.1', status: 201, ended: 'complete', bodyBytesOut: 5,
    upstream: up.url.slice(7), attempts: 1, pool: 'default', route: -1, requestId: id, userAgent: 'ua/1', referer: 'https://from/',
  })
  t.match(ok['host'], /^127\.0\.0\.1:\d+$/)
  t.ok((ok['bytesOut'] as number) > 5 && (ok['bytesIn'] as number) > 50, 'bytes both ways')
  t.ok(typeof ok['ms'] === 'number' && typeof ok['upstreamMs'] === 'number' && (ok['upstreamMs'] as number) <= (ok['ms'] as number))
  t.notOk('tls' in ok || 'sni' in ok || 'idempotency' in ok || 'rateLimit' in ok || 'traceId' in ok, 'what does not apply is left out')

  // the old log said 502 here: the client got a 200 head and 32 KiB
  const got = await rawGet(c.url, '/cut')
  t.match(got.toString('latin1', 0, 20), /^HTTP\/1\.1 200 /)
  const cut = await requestLine(c, '/cut')
  t.match(cut, { status: 200, ended: 'upstream-cut', bodyBytesOut: KB32 })
  t.equal(got.length - got.indexOf('\r\n\r\n') - 4, KB32, 'the client received exactly what the log says was sent')

  await rawGet(c.url, '/stall', 1000)
  t.match(await requestLine(c, '/stall'), { status: 200, ended: 'client-aborted' }, 'it left after the head: the status it saw')
  const s = net.connect(Number(new URL(c.url).port), '127.0.0.1', () => s.write('GET /never HTTP/1.1\r\nhost: a\r\n\r\n'))
  s.on('error', () => {})
  await never
  s.resetAndDestroy()
  t.match(await requestLine(c, '/never'), { status: 499, ended: 'client-aborted' }, 'it left before any answer: 499')
})

t.test('HTTP/2 over TLS: protocol, TLS version and SNI', async (t) => {
  const pki = new Pki()
  const leaf = pki.issue(['a.test'])
  const b = await startBackend()
  t.teardown(() => b.close())
  const c = await startClaylb({ args: ['--upstream', b.url], config: { listen: { processes: 1, http2: true, tls: { cert: leaf.cert, key: leaf.key } }, log: { access: { fields: ['protocol', 'tls', 'sni', 'status', 'path', 'requestId'] } } } })
  t.teardown(() => c.stop())
  const s = await h2session(Number(new URL(c.url).port), 'a.test', pki.caPem)
  t.teardown(() => s.close())
  const r = await h2(s, { path: '/h2' })
  t.equal(r.status, 200)
  const line = await requestLine(c, '/h2')
  t.match(line, { protocol: 'HTTP/2.0', tls: /^TLSv1\.[23]$/, sni: 'a.test', status: 200, requestId: r.headers['x-request-id'] })
})

t.test('combined format to a file, reopened on SIGUSR1 with two proxy processes: no line lost or torn', async (t) => {
  const b = await startBackend()
  t.teardown(() => b.close())
  const dir = mkdtempSync(join(tmpdir(), 'claylb-access-'))
  const file = join(dir, 'access.log')
  const c = await startClaylb({ args: ['--upstream', b.url], config: { listen: { processes: 2 }, log: { access: { format: 'combined', path: file } } } })
  t.teardown(() => c.stop())
  const N = 400
  const send = async (from: number, to: number): Promise<void> => {
    // 8 at a time, so both processes serve some
    for (let i = from; i < to; i += 8) {
      await Promise.all(Array.from({ length: Math.min(8, to - i) }, (_v, k) => req(`${c.url}/n/${i + k}`, { headers: { 'user-agent': 'load "q"' } })))
    }
  }
  await send(0, N / 2)
  renameSync(file, `${file}.1`)
  c.proc.kill('SIGUSR1')
  await c.waitForLog((l) => l['msg'] === 'reopening the access log')
  await send(N / 2, N)
  // the new file appears with the first batch written after the reopen
  await c.stop()
  t.ok(existsSync(file), 'a new file at the path')
  const lines = [readFileSync(`${file}.1`, 'latin1'), readFileSync(file, 'latin1')].join('').split('\n').filter((l) => l !== '')
  const re = /^127\.0\.0\.1 - - \[\d\d\/\w{3}\/\d{4}:\d\d:\d\d:\d\d \+0000\] "GET \/n\/(\d+) HTTP\/1\.1" 200 \d+ "-" "load \\x22q\\x22"$/
  const torn = lines.filter((l) => !re.test(l))
  t.same(torn, [], 'every line whole, in the combined format')
  const seen = lines.map((l) => Number(re.exec(l)?.[1])).sort((a, b) => a - b)
  t.same(seen, Array.from({ length: N }, (_v, i) => i), 'every request once')
  const after = readFileSync(file, 'latin1')
  t.ok(after.split('\n').filter((l) => l !== '').length > 0, 'lines continued in the new file')
})
