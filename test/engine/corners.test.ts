/**
 * The protocol corners of issue 14 on the raw engine, each with raw sockets: what the client got AND
 * what the upstream saw.
 */
import t from 'tap'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { RawClient, problemOf } from '../helpers/raw.js'
import { startRawUpstream } from '../helpers/backend.js'
import { startClaylb } from '../helpers/claylb.js'
import { settle, startRig } from '../helpers/rig.js'

const rig = await startRig(t, { config: { engine: 'raw' } })

async function send (bytes: string): Promise<{ c: RawClient, r: Awaited<ReturnType<RawClient['readResponse']>> }> {
  const c = await RawClient.connect(rig.port)
  t.teardown(() => c.destroy())
  await c.write(bytes)
  return { c, r: await c.readResponse() }
}

t.test('an invalid Host is 400 and never forwarded nor copied into x-forwarded-host', async (t) => {
  const bad = ['a, b', 'a b', 'a/b', 'user@a', 'a:99999', 'a:x', 'a:1:2', '\xe4.test', '']
  for (const host of bad) {
    const m = rig.mark()
    const { r } = await send(`GET /h HTTP/1.1\r\nHost: ${host}\r\n\r\n`)
    t.equal(r?.status, 400, `Host ${JSON.stringify(host)}: 400`)
    t.equal(problemOf(r!).status, 400)
    t.equal(rig.since(m).count, 0, `Host ${JSON.stringify(host)}: nothing upstream`)
  }
  const m = rig.mark()
  const { r } = await send('GET /h HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n')
  t.equal(r?.status, 400, 'two Host headers: 400')
  t.equal(rig.since(m).count, 0)
  for (const host of ['example.test', 'example.test:8080', '127.0.0.1:1', '[::1]:80', 'xn--bcher-kva.test']) {
    const m = rig.mark()
    const { r } = await send(`GET /ok HTTP/1.1\r\nHost: ${host}\r\n\r\n`)
    t.equal(r?.status, 200, `Host ${host} passes`)
    t.equal(rig.since(m).seen[0]?.headers['x-forwarded-host'], host)
  }
})

t.test('extension methods and HTTP/1.x minors above 1 are accepted; Via is added', async (t) => {
  // Node's own server refuses extension methods, so the upstream here is a raw one that shows the bytes
  const heads: string[] = []
  const up = await startRawUpstream((head) => { heads.push(head); return 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok' })
  const lb = await startClaylb({ args: ['--upstream', up.url], config: { engine: 'raw', healthCheck: { enabled: false } } })
  t.teardown(async () => { await lb.stop(); await up.close() })
  const c = await RawClient.connect(Number(new URL(lb.url).port))
  t.teardown(() => c.destroy())
  await c.write('FOO /ext HTTP/1.1\r\nHost: a\r\n\r\n')
  let r = await c.readResponse()
  t.equal(r?.status, 200, 'FOO is forwarded')
  t.match(heads[0], /^FOO \/ext HTTP\/1\.1\r\n/, 'the upstream saw method FOO')
  await c.write('\r\nPROPFIND-X /p HTTP/1.1\r\nHost: a\r\n\r\n')
  r = await c.readResponse()
  t.equal(r?.status, 200, 'another extension method on the same connection')
  t.match(heads[1], /^PROPFIND-X \/p HTTP\/1\.1\r\n/)
  const c2 = await RawClient.connect(Number(new URL(lb.url).port))
  t.teardown(() => c2.destroy())
  await c2.write('F(O /bad HTTP/1.1\r\nHost: a\r\n\r\n')
  r = await c2.readResponse()
  t.equal(r?.status, 400, 'a method that is not a token: 400')
  t.equal(heads.length, 2, 'and not forwarded')

  let m = rig.mark()
  const { r: r2 } = await send('FOO /ext HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc')
  await settle(() => rig.since(m).wire, (w) => w.endsWith('abc'), 3000)
  t.match(rig.since(m).wire, /^FOO \/ext HTTP\/1\.1\r\n[^]*\r\n\r\nabc$/, 'with a body: the body follows as framed')
  t.ok(r2 !== undefined)

  m = rig.mark()
  ;({ r } = await send('GET /v HTTP/1.2\r\nHost: a\r\n\r\n'))
  t.equal(r?.status, 200, 'HTTP/1.2 is served')
  t.match(r?.head, /^HTTP\/1\.1 200/, 'answered as HTTP/1.1')
  t.match(rig.since(m).wire, /^GET \/v HTTP\/1\.1\r\n/, 'forwarded as HTTP/1.1')
  t.equal(rig.since(m).seen[0]?.headers['via'], '1.1 claylb', 'Via added')

  m = rig.mark()
  ;({ r } = await send('GET /v HTTP/2.0\r\nHost: a\r\n\r\n'))
  t.equal(r?.status, 505, 'HTTP/2.0 in an HTTP/1 request line: 505')
  t.equal(rig.since(m).count, 0)

  m = rig.mark()
  ;({ r } = await send('GET /via HTTP/1.1\r\nHost: a\r\nVia: 1.0 edge\r\n\r\n'))
  t.same(rig.since(m).seen[0]?.rawHeaders.filter((_h, i, a) => i % 2 === 1 && a[i - 1]!.toLowerCase() === 'via'), ['1.0 edge', '1.1 claylb'], 'an existing Via is kept, ours follows')
})

t.test('Max-Forwards is honoured for OPTIONS and TRACE', async (t) => {
  let m = rig.mark()
  let { r } = await send('OPTIONS * HTTP/1.1\r\nHost: a\r\nMax-Forwards: 0\r\n\r\n')
  t.equal(r?.status, 200, 'OPTIONS with Max-Forwards: 0 is answered by claylb')
  t.match(r?.headers['allow'], /GET/)
  t.equal(rig.since(m).count, 0, 'and not forwarded')

  m = rig.mark()
  ;({ r } = await send('TRACE /t HTTP/1.1\r\nHost: a\r\nMax-Forwards: 0\r\nCookie: secret=1\r\nX-Probe: yes\r\n\r\n'))
  t.equal(r?.status, 200, 'TRACE with Max-Forwards: 0 is answered by claylb')
  t.equal(r?.headers['content-type'], 'message/http')
  t.match(r?.body, /^TRACE \/t HTTP\/1\.1\r\n/)
  t.match(r?.body, /X-Probe: yes/)
  t.notMatch(r?.body, /secret/, 'credentials are not echoed')
  t.equal(rig.since(m).count, 0)

  m = rig.mark()
  ;({ r } = await send('OPTIONS /o HTTP/1.1\r\nHost: a\r\nMax-Forwards: 3\r\n\r\n'))
  t.equal(r?.status, 200)
  t.equal(rig.since(m).seen[0]?.headers['max-forwards'], '2', 'decremented on the way')

  m = rig.mark()
  ;({ r } = await send('GET /g HTTP/1.1\r\nHost: a\r\nMax-Forwards: 0\r\n\r\n'))
  t.equal(r?.status, 200)
  t.equal(rig.since(m).seen[0]?.headers['max-forwards'], '0', 'other methods pass it untouched')
})

t.test('pipelined unsafe requests reach the upstream one after another', async (t) => {
  let inflight = 0
  let most = 0
  const order: string[] = []
  const backend = http.createServer((req, res) => {
    inflight++
    most = Math.max(most, inflight)
    order.push(req.url!)
    req.resume()
    req.on('end', () => setTimeout(() => { inflight--; res.end(req.url) }, 100))
  })
  await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve))
  const lb = await startClaylb({ args: ['--upstream', `http://127.0.0.1:${(backend.address() as AddressInfo).port}`], config: { engine: 'raw', log: { access: false }, healthCheck: { enabled: false } } })
  t.teardown(async () => { await lb.stop(); backend.closeAllConnections(); backend.close() })
  const c = await RawClient.connect(Number(new URL(lb.url).port))
  t.teardown(() => c.destroy())
  const post = (p: string): string => `POST ${p} HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi`
  await c.write(post('/1') + post('/2') + `DELETE /3 HTTP/1.1\r\nHost: a\r\n\r\n` + post('/4'))
  const bodies: string[] = []
  for (let i = 0; i < 4; i++) bodies.push((await c.readResponse())?.body ?? '?')
  t.same(bodies, ['/1', '/2', '/3', '/4'], 'answers in order')
  t.same(order, ['/1', '/2', '/3', '/4'], 'forwarded in order')
  t.equal(most, 1, 'never two at once upstream')
})

t.test('103 Early Hints and an unrequested 100 Continue are forwarded (RFC 9110 §15.2), not a 502 and a retry', async (t) => {
  const up = await startRawUpstream('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')
  const lb = await startClaylb({ args: ['--upstream', up.url], config: { engine: 'raw', healthCheck: { enabled: false } } })
  t.teardown(async () => { await lb.stop(); await up.close() })
  const c = await RawClient.connect(Number(new URL(lb.url).port))
  t.teardown(() => c.destroy())
  await c.write('GET /hints HTTP/1.1\r\nHost: a\r\n\r\n')
  t.equal((await c.readResponse())?.status, 100, 'the client gets the 100 first')
  const first = await c.readResponse()
  t.equal(first?.status, 103, 'then the 103')
  t.equal(first?.headers['link'], '</a.css>; rel=preload')
  const second = await c.readResponse()
  t.equal(second?.status, 200, 'then the answer')
  t.equal(second?.body, 'ok')
  t.equal(up.count, 1, 'the upstream was asked once')

  // an HTTP/1.0 client cannot take a 1xx: only the final answer
  const c10 = await RawClient.connect(Number(new URL(lb.url).port))
  t.teardown(() => c10.destroy())
  await c10.write('GET /hints HTTP/1.0\r\nHost: a\r\n\r\n')
  const only = await c10.readResponse()
  t.equal(only?.status, 200, 'HTTP/1.0: the final answer only')
})

t.test('a WebSocket upgrade gets every check other requests get', async (t) => {
  const seen: http.IncomingHttpHeaders[] = []
  const afterRefusal: string[] = []
  const backend = http.createServer((req, res) => {
    afterRefusal.push(`${req.method} ${req.url}`)
    res.end('plain')
  })
  backend.on('upgrade', (req: http.IncomingMessage, socket: import('node:net').Socket) => {
    seen.push(req.headers)
    if (req.url === '/refuse') {
      socket.end('HTTP/1.1 403 Forbidden\r\ncontent-length: 4\r\n\r\nnope')
      return
    }
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n')
    socket.on('data', (d) => socket.write(d))
  })
  await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve))
  const lb = await startClaylb({ args: ['--upstream', `http://127.0.0.1:${(backend.address() as AddressInfo).port}`], config: { engine: 'raw', healthCheck: { enabled: false } } })
  t.teardown(async () => { await lb.stop(); backend.closeAllConnections(); backend.close() })
  const port = Number(new URL(lb.url).port)
  const ws = (path: string, extra = '', host = 'a'): string =>
    `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade, X-Secret\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nX-Secret: s\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Host: evil\r\n${extra}\r\n`

  // accepted: a tunnel, with the forwarded headers rewritten and Connection-listed ones stripped
  const c = await RawClient.connect(port)
  t.teardown(() => c.destroy())
  await c.write(ws('/ws'))
  const head = await c.readResponse()
  t.equal(head?.status, 101, 'switched')
  await c.write('ping')
  t.ok(await c.waitFor(() => c.buffer.includes('ping'), 5000), 'bytes echo through the tunnel')
  const h = seen[0]!
  t.equal(h['x-forwarded-for'], '127.0.0.1', 'x-forwarded-for is the peer (the client is not a trusted forwarder)')
  t.equal(h['x-forwarded-host'], 'a', 'x-forwarded-host is the proxy\'s')
  t.notOk('x-secret' in h, 'a Connection-listed header is stripped')
  t.equal(h['upgrade'], 'websocket')
  t.equal(h['via'], '1.1 claylb')

  // refused by the proxy before any upstream: bad Host, absolute-form naming another host
  for (const [bytes, why] of [[ws('/ws', '', 'a b'), 'invalid Host'], [ws('http://other.test/ws'), 'absolute-form naming another host']] as const) {
    const before = seen.length
    const c = await RawClient.connect(port)
    t.teardown(() => c.destroy())
    await c.write(bytes)
    const r = await c.readResponse()
    t.equal(r?.status, 400, `${why}: 400`)
    t.ok(await c.waitClosed(5000), `${why}: connection closed`)
    t.equal(seen.length, before, `${why}: nothing upstream`)
  }

  // refused by the upstream: the answer is framed, then the connection closes; what the client sends
  // next is not tunnelled to the upstream as a request of its own
  const r0 = afterRefusal.length
  const c2 = await RawClient.connect(port)
  t.teardown(() => c2.destroy())
  await c2.write(ws('/refuse') + 'GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n')
  const refused = await c2.readResponse()
  t.equal(refused?.status, 403, 'the upstream\'s refusal reaches the client')
  t.equal(refused?.body, 'nope', 'framed by its content-length')
  t.ok(await c2.waitClosed(5000), 'then the connection closes')
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.same(afterRefusal.slice(r0), [], 'the bytes after a refused upgrade never reached the upstream')
})

t.test('a body on a WebSocket upgrade request is forwarded as its body, framed', async (t) => {
  const m = rig.mark()
  const { c, r } = await send('GET /wsbody HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\nContent-Length: 4\r\n\r\nbody')
  // the recording backend does not speak WebSocket: it answers the plain request it also is
  t.equal(r?.status, 200)
  t.equal(r?.body, 'got 4')
  t.equal(rig.since(m).seen[0]?.body, 'body')
  t.ok(await c.waitClosed(5000), 'the connection closes after a refused upgrade')
})

t.test('pipelined behind a Connection: close request: never forwarded', async (t) => {
  const m = rig.mark()
  const c = await RawClient.connect(rig.port)
  t.teardown(() => c.destroy())
  await c.write('GET /last HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nPOST /never HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n')
  const r = await c.readResponse()
  t.equal(r?.status, 200)
  t.equal(r?.headers['connection'], 'close')
  t.ok(await c.waitClosed(5000))
  await settle(() => rig.since(m).count, (n) => n >= 1, 2000)
  t.same(rig.since(m).seen.map((s) => s.url), ['/last'])
})
