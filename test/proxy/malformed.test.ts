import t from 'tap'
import { startBackend } from '../helpers/backend.js'
import { startClaylb } from '../helpers/claylb.js'
import { bodyOf, rawExchange, statusOf } from '../helpers/raw.js'

t.test('malformed requests get 400/431/413 problem+json and nothing reaches a backend', async (t) => {
  const backend = await startBackend((req, res) => { req.resume(); req.on('end', () => res.end('reached')) })
  const lb = await startClaylb({ args: ['--upstream', backend.url], config: { limits: { maxHeaderBytes: 4096, maxBodyBytes: 1000 } } })
  t.teardown(async () => { await lb.stop(); await backend.close() })
  const port = Number(new URL(lb.url).port)

  const cases: Array<[string, string, number]> = [
    ['CL + TE together', 'POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400],
    ['TE + CL together', 'POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n', 400],
    ['two different Content-Length', 'POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!', 400],
    ['oversized headers', `GET /a HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(8000)}\r\n\r\n`, 431],
    ['oversized body (declared)', `POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n${'b'.repeat(5000)}`, 413],
    ['oversized body behind Expect: 100-continue', 'POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n', 413],
    ['bad chunk size', 'POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n', 400],
    ['no Host on HTTP/1.1', 'GET /a HTTP/1.1\r\n\r\n', 400],
    ['garbage request line', 'HELLO\r\n\r\n', 400],
  ]
  for (const [name, bytes, status] of cases) {
    const answer = await rawExchange(port, bytes)
    t.equal(statusOf(answer), status, `${name}: ${status}`)
    t.match(answer, /content-type: application\/problem\+json/i, `${name}: problem+json`)
    const body = JSON.parse(bodyOf(answer)) as { status: number, type: string }
    t.equal(body.status, status, `${name}: problem status`)
  }
  t.equal(backend.count, 0, 'the backend saw none of them')

  // and the proxy is still fine
  const ok = await rawExchange(port, 'GET /fine HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
  t.equal(statusOf(ok), 200)
  t.equal(backend.count, 1)
})

t.test('a chunked body past the limit is cut with 413', async (t) => {
  const backend = await startBackend((req, res) => { req.resume(); req.on('end', () => res.end('reached')); req.on('error', () => {}) })
  const lb = await startClaylb({ args: ['--upstream', backend.url], config: { limits: { maxBodyBytes: 1000 } } })
  t.teardown(async () => { await lb.stop(); await backend.close() })
  const port = Number(new URL(lb.url).port)
  const chunk = `${(600).toString(16)}\r\n${'c'.repeat(600)}\r\n`
  const answer = await rawExchange(port, `POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${chunk}${chunk}${chunk}0\r\n\r\n`)
  t.equal(statusOf(answer), 413)
})

t.test('Expect: 100-continue within the limit is answered 100 and then forwarded', async (t) => {
  const backend = await startBackend((req, res) => { let n = 0; req.on('data', (c: Buffer) => { n += c.length }); req.on('end', () => res.end(`got ${n}`)) })
  const lb = await startClaylb({ args: ['--upstream', backend.url] })
  t.teardown(async () => { await lb.stop(); await backend.close() })
  const port = Number(new URL(lb.url).port)
  const net = await import('node:net')
  const answer = await new Promise<string>((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1')
    let out = ''
    s.setEncoding('latin1')
    s.on('data', (d: string) => {
      out += d
      if (out.includes('100 Continue') && !out.includes('hello')) s.write('hello')
      if (/got \d+/.test(out)) { s.destroy(); resolve(out) }
    })
    s.on('error', reject)
    s.write('POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n')
  })
  t.match(answer, /^HTTP\/1\.1 100 Continue/)
  t.match(answer, /HTTP\/1\.1 200 OK[\s\S]*got 5/)
  t.equal(backend.seen[0]!.headers['expect'], undefined, 'expect is not forwarded')
})
