import t from 'tap'
import net from 'node:net'
import { startBackend } from '../helpers/backend.js'
import { startClaylb } from '../helpers/claylb.js'
import { req } from '../helpers/http.js'
import { requestHead, responseHead, responseHeaderList, type RequestHeadFacts, type ResponseHeadFacts } from '../../src/data/http/head.js'

/** send raw bytes, read the whole answer until the server closes */
function raw (port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1')
    let out = ''
    s.setEncoding('latin1')
    s.on('data', (d: string) => { out += d })
    s.on('end', () => resolve(out))
    s.on('close', () => resolve(out))
    s.on('error', reject)
    s.write(text)
  })
}

t.test('hop-by-hop and Connection-listed headers never cross, in either direction', async (t) => {
  const backend = await startBackend((req, res) => {
    req.resume()
    res.setHeader('keep-alive', 'timeout=5')
    res.setHeader('x-secret-hop', 'should-not-pass')
    res.setHeader('connection', 'x-secret-hop')
    res.setHeader('x-kept', 'yes')
    res.setHeader('proxy-authenticate', 'Basic')
    res.end('ok')
  })
  const lb = await startClaylb({ args: ['--upstream', backend.url] })
  t.teardown(async () => { await lb.stop(); await backend.close() })
  const port = Number(new URL(lb.url).port)
  const answer = await raw(port, [
    'GET /h HTTP/1.1', 'Host: example.test', 'Connection: close, X-Private, x-forwarded-for',
    'X-Private: drop-me', 'Keep-Alive: timeout=100', 'TE: trailers', 'Proxy-Authorization: Basic abc',
    'Upgrade-Insecure-Requests: 1', 'X-Forwarded-For: 6.6.6.6', 'X-Forwarded-Proto: gopher',
    'X-Forwarded-Host: evil.test', 'Forwarded: for=1.1.1.1', 'X-Normal: 1', '', '',
  ].join('\r\n'))
  t.match(answer, /^HTTP\/1\.1 200/)
  const seen = backend.seen[0]!.headers
  t.equal(seen['x-private'], undefined, 'Connection-listed request header removed')
  t.equal(seen['te'], undefined)
  t.equal(seen['proxy-authorization'], undefined)
  t.not(seen['keep-alive'], 'timeout=100', 'client keep-alive not forwarded')
  t.equal(seen['x-forwarded-for'], '127.0.0.1', 'the client cannot strip or spoof around the header the proxy adds: it is the client address')
  t.equal(seen['x-forwarded-proto'], 'http', 'proto is set, not passed through')
  t.equal(seen['x-forwarded-host'], 'example.test')
  t.equal(seen['forwarded'], 'for=1.1.1.1', 'forwarded left alone')
  t.equal(seen['host'], 'example.test', 'Host kept')
  t.equal(seen['upgrade-insecure-requests'], '1', 'a header merely starting with "upgrade" passes')
  t.equal(seen['x-normal'], '1')
  const head = answer.split('\r\n\r\n')[0]!.toLowerCase()
  t.notMatch(head, /x-secret-hop/, 'Connection-listed response header removed')
  t.notMatch(head, /keep-alive: timeout=5/, 'upstream keep-alive not forwarded')
  t.notMatch(head, /proxy-authenticate/)
  t.match(head, /x-kept: yes/)
})

t.test('x-forwarded-for from an untrusted client is replaced by the peer; from a trusted forwarder the peer is appended', async (t) => {
  const backend = await startBackend((req, res) => { req.resume(); res.end(String(req.headers['x-forwarded-for'])) })
  const lb = await startClaylb({ args: ['--upstream', backend.url] })
  t.teardown(async () => { await lb.stop(); await backend.close() })
  const r = await req(`${lb.url}/`, { headers: { 'x-forwarded-for': '203.0.113.9' } })
  t.equal(r.body, '127.0.0.1')
  const trusting = await startClaylb({ args: ['--upstream', backend.url], config: { trustedProxies: ['127.0.0.1'] } })
  t.teardown(() => trusting.stop())
  const r2 = await req(`${trusting.url}/`, { headers: { 'x-forwarded-for': '203.0.113.9' } })
  t.equal(r2.body, '203.0.113.9, 127.0.0.1')
})

t.test('header passes (unit)', async (t) => {
  const f = {} as RequestHeadFacts
  requestHead(f, ['Host', 'a', 'Connection', 'X-A, host', 'X-A', '1', 'Content-Length', '5', 'Expect', '100-continue'], '10.0.0.1', 'https', 'POST')
  t.equal(f.headLines, 'Host: a\r\nContent-Length: 5\r\nx-forwarded-for: 10.0.0.1\r\nx-forwarded-proto: https\r\nx-forwarded-host: a\r\nvia: 1.1 claylb\r\n')
  t.equal(f.contentLength, 5)
  t.equal(f.expectContinue, true)
  requestHead(f, ['Host', 'a', 'Transfer-Encoding', 'chunked'], '::1', 'http', 'POST')
  t.equal(f.chunkedIn, true)
  t.equal(f.contentLength, -1)
  const raw = ['Connection', 'x-b', 'X-B', '1', 'Set-Cookie', 'a=1', 'Set-Cookie', 'b=2', 'Transfer-Encoding', 'chunked']
  t.same(responseHeaderList(raw), ['Set-Cookie', 'a=1', 'Set-Cookie', 'b=2'], 'duplicates kept, listed and hop-by-hop dropped')
  const r = {} as ResponseHeadFacts
  responseHead(r, raw)
  t.equal(r.respLines, 'Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n', 'the hot path\'s string pass drops the same names')
  t.equal(r.respChunked, true)
})
