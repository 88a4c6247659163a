import t from 'tap'
import { startBackend, startBackends, deadPort } from '../helpers/backend.js'
import { startClaylb } from '../helpers/claylb.js'
import { json, req, sleep } from '../helpers/http.js'
import { RawClient } from '../helpers/raw.js'
import { once } from 'node:events'
import { connect, type Socket } from 'node:net'
import { Readable } from 'node:stream'
import { Agent, request } from 'undici'

t.test('a dead backend: GETs and POSTs still succeed on the others (connection refused is retried)', async (t) => {
  const live = await startBackends(['a', 'b'])
  const dead = `http://127.0.0.1:${await deadPort()}`
  const lb = await startClaylb({ args: ['--upstream', live[0]!.url, '--upstream', dead, '--upstream', live[1]!.url] })
  t.teardown(async () => { await lb.stop(); await Promise.all(live.map((b) => b.close())) })
  const statuses: number[] = []
  for (let i = 0; i < 12; i++) {
    statuses.push((await req(`${lb.url}/g`)).status)
    statuses.push((await req(`${lb.url}/p`, { method: 'POST', body: `n=${i}` })).status)
  }
  t.same(new Set(statuses), new Set([200]), 'all 24 succeeded')
  t.equal(live[0]!.count + live[1]!.count, 24, 'each request executed exactly once')
  await lb.waitForLog((l) => l['msg'] === 'request' && l['path'] === '/p' && l['attempts'] !== undefined && lb.logs.filter((x) => x['msg'] === 'request').length >= 24)
  const retried = lb.logs.filter((l) => l['msg'] === 'request' && l['attempts'] === 2)
  t.ok(retried.length >= 4, `${retried.length} requests needed a second try`)
})

t.test('a backend that accepts and never answers gives 504 within the configured timeout', async (t) => {
  const hang = await startBackend(() => { /* never answers */ })
  const lb = await startClaylb({ args: ['--upstream', hang.url], config: { timeouts: { headersMs: 800 } } })
  t.teardown(async () => { await lb.stop(); await hang.close() })
  const started = Date.now()
  const r = await req(`${lb.url}/slow`)
  const took = Date.now() - started
  t.equal(r.status, 504)
  t.equal(r.headers['content-type'], 'application/problem+json')
  t.equal(JSON.parse(r.body).status, 504)
  t.ok(took >= 700 && took < 5000, `answered after ${took} ms (timeout 800 ms)`)
  t.equal(hang.count, 1, 'a timeout is not retried')
})

t.test('the whole-request deadline (timeouts.requestMs) bounds every exchange', async (t) => {
  const drip = await startBackend((_req, res) => { res.writeHead(200); res.write('x'); /* never ends */ })
  const slowHead = await startBackend(() => {})
  t.teardown(async () => { await drip.close(); await slowHead.close() })
  const config = { timeouts: { requestMs: 600, headersMs: 30000, idleMs: 30000 } }
  const lb = await startClaylb({ args: ['--upstream', slowHead.url], config })
  t.teardown(() => lb.stop())
  let started = Date.now()
  const r = await req(`${lb.url}/slow`)
  t.equal(r.status, 504, 'no headers yet: 504 problem')
  t.ok(Date.now() - started < 4000, `after ${Date.now() - started} ms`)

  const lb2 = await startClaylb({ args: ['--upstream', drip.url], config })
  t.teardown(() => lb2.stop())
  started = Date.now()
  await t.rejects(req(`${lb2.url}/drip`), 'response started: the connection is cut, so the client sees an incomplete answer')
  t.ok(Date.now() - started < 4000, `after ${Date.now() - started} ms`)
})

t.test('a POST that reached a backend which then reset is NOT retried: one execution, 502', async (t) => {
  const resetter = await startBackend((req) => {
    req.resume()
    req.on('end', () => req.socket.destroy())
  })
  const other = await startBackend((req, res) => { req.resume(); res.end('other') })
  const lb = await startClaylb({ args: ['--upstream', resetter.url, '--upstream', other.url] })
  t.teardown(async () => { await lb.stop(); await resetter.close(); await other.close() })
  const r = await req(`${lb.url}/orders`, { method: 'POST', body: '{"amount":1}', headers: { 'content-type': 'application/json' } })
  t.equal(r.status, 502)
  t.equal(JSON.parse(r.body).type, 'urn:claylb:problem:upstream-failed')
  t.equal(resetter.count, 1, 'the backend counted exactly one execution')
  t.equal(other.count, 0, 'the POST was not replayed on another backend')
  // the same failure on a GET is retried on the other backend
  const g = await req(`${lb.url}/orders`)
  const g2 = await req(`${lb.url}/orders`)
  t.same([g.status, g2.status], [200, 200], 'GETs succeed: a reset idempotent request is retried')
})

t.test('the only upstream refuses: 502 problem after the tries', async (t) => {
  const dead = `http://127.0.0.1:${await deadPort()}`
  const lb = await startClaylb({ args: ['--upstream', dead] })
  t.teardown(async () => { await lb.stop() })
  const r = await req(`${lb.url}/x`)
  t.equal(r.status, 502)
  t.equal(r.headers['content-type'], 'application/problem+json')
})

t.test('a client that hangs up is logged as 499', async (t) => {
  const slow = await startBackend((req, res) => { req.resume(); setTimeout(() => res.end('late'), 1500) })
  const lb = await startClaylb({ args: ['--upstream', slow.url] })
  t.teardown(async () => { await lb.stop(); await slow.close() })
  const ac = new AbortController()
  const { request } = await import('undici')
  const r = request(`${lb.url}/gone`, { signal: ac.signal }).catch(() => 'aborted')
  await new Promise((resolve) => setTimeout(resolve, 300))
  ac.abort()
  t.equal(await r, 'aborted')
  const line = await lb.waitForLog((l) => l['msg'] === 'request' && l['status'] === 499)
  t.equal(line['path'], '/gone')
  const st = await json<{ upstreams: Array<{ inflight: number, healthy: boolean }> }>(`${lb.admin}/status`)
  t.equal(st.upstreams[0]!.healthy, true, 'the upstream is not blamed')
  t.equal(st.upstreams[0]!.inflight, 0, 'nothing left in flight')
})

t.test('an upstream that resets mid-upload: every client reads the 502, none sees a broken pipe', async (t) => {
  // the reset comes while the client is still sending; closing at once made some clients see EPIPE
  const resetter = await startBackend((req) => { req.once('data', () => req.socket.resetAndDestroy()) })
  const lb = await startClaylb({ args: ['--upstream', resetter.url] })
  const agent = new Agent({ connections: 32 })
  t.teardown(async () => { await agent.close(); await lb.stop(); await resetter.close() })
  // 1 MiB in 16 chunks over ~160 ms, chunked
  const dripped = (): Readable => Readable.from((async function * () {
    for (let i = 0; i < 16; i++) { yield Buffer.alloc(64 * 1024, 'u'); await sleep(10) }
  })())
  const answers = await Promise.all(Array.from({ length: 20 }, async () => {
    try {
      const r = await request(`${lb.url}/upload`, { method: 'POST', body: dripped(), dispatcher: agent })
      return `${r.statusCode} ${(JSON.parse(await r.body.text()) as { type: string }).type}`
    } catch (err) {
      return `${(err as { code?: string }).code ?? ''} ${(err as Error).message}`
    }
  }))
  t.same([...new Set(answers)], ['502 urn:claylb:problem:upstream-failed'], '20 of 20 read the 502')

  // a client that writes its whole body before it reads anything (8 MiB, more than the socket buffers hold)
  const c = await RawClient.connect(Number(new URL(lb.url).port))
  t.teardown(() => c.destroy())
  const size = 8 * 1024 * 1024
  c.pause()
  await c.write(`POST /upload HTTP/1.1\r\nHost: x\r\ncontent-length: ${size}\r\n\r\n`)
  const chunk = Buffer.alloc(256 * 1024, 'u')
  let written = 0
  while (written < size && c.error === undefined && !c.closed) { await c.write(chunk).catch(() => {}); written += chunk.length }
  t.equal(c.error?.code, undefined, `the whole body was accepted (${written / 1048576} MiB written)`)
  c.socket.resume()
  const answer = await c.readResponse(5000)
  t.equal(answer?.status, 502, 'then the 502 is read')
  t.equal(answer?.headers['connection'], 'close', 'with connection: close')
  t.ok(await c.waitClosed(5000), 'and the connection closes')
  t.equal(resetter.count, 21, 'each upload reached the upstream once: a POST is not retried')
})

t.test('an upstream that breaks after its head, before any byte of the body: 502 problem, not a bare close', async (t) => {
  const breaker = await startBackend((req, res) => {
    req.resume()
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 100 })
    if (req.url === '/partial') res.write('x'.repeat(50))
    else res.flushHeaders()
    setTimeout(() => req.socket.destroy(), 50)
  })
  const lb = await startClaylb({ args: ['--upstream', breaker.url] })
  t.teardown(async () => { await lb.stop(); await breaker.close() })
  for (const method of ['GET', 'POST']) {
    const r = await req(`${lb.url}/head-only`, { method, ...(method === 'POST' ? { body: 'b' } : {}) })
    t.equal(r.status, 502, `${method}: nothing of the answer had gone out, so it can still be a 502`)
    t.equal(JSON.parse(r.body).type, 'urn:claylb:problem:upstream-failed')
  }
  // the contrast: once part of the body went out, the only honest answer left is a cut connection
  await t.rejects(req(`${lb.url}/partial`), 'half a body: the client sees an incomplete answer, never a whole one')
})

t.test('while a refused upload lingers, nothing pipelined behind it runs, not even an upgrade', async (t) => {
  let upgrades = 0
  const resetter = await startBackend((req) => { req.once('data', () => req.socket.destroy()) })
  resetter.server.on('upgrade', (_req, socket: Socket) => { upgrades++; socket.destroy() })
  const lb = await startClaylb({ args: ['--upstream', resetter.url] })
  t.teardown(async () => { await lb.stop(); await resetter.close() })
  // half-open, as a client that keeps sending after the answer's FIN
  const s = connect({ port: Number(new URL(lb.url).port), host: '127.0.0.1', allowHalfOpen: true })
  let got = ''
  s.on('data', (d: Buffer) => { got += d.toString('latin1') })
  s.on('error', () => {})
  await once(s, 'connect')
  s.write('POST /up HTTP/1.1\r\nHost: x\r\ntransfer-encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n')
  await sleep(300) // the upstream reset, the 502 went out, the connection lingers
  s.write('10\r\n0123456789abcdef\r\n0\r\n\r\n' +
    'GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n' +
    'GET /after HTTP/1.1\r\nHost: x\r\n\r\n')
  await sleep(500)
  s.destroy()
  t.match(got, /^HTTP\/1\.1 502 /, 'the upload got its 502')
  t.equal(got.match(/HTTP\/1\.1 /g)?.length, 1, 'and nothing else was answered')
  t.equal(upgrades, 0, 'the pipelined upgrade never reached the upstream')
  t.equal(resetter.count, 1, 'nor any pipelined request')
})
