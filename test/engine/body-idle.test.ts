/**
 * The per-try body-idle timeout (timeouts.idleMs), kept by the engine's one sweep: an upstream that
 * starts an answer and then falls silent is cut, the client connection is closed (its status is out,
 * so it must never take a part for the whole), and nothing is retried. Paced by what each side sees:
 * the bounds below only keep a broken build from hanging the suite.
 */
import t from 'tap'
import net, { type AddressInfo } from 'node:net'
import { RawClient, problemOf } from '../helpers/raw.js'
import { startClaylb } from '../helpers/claylb.js'
import { settle } from '../helpers/rig.js'
import { scrape, value } from '../helpers/metrics.js'

const IDLE_MS = 800

/** An upstream that answers each request with `answer` and then never sends another byte. */
async function stallingUpstream (answer: string): Promise<{ url: string, requests: number, open: number, closed: number, close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>()
  const up = { url: '', requests: 0, open: 0, closed: 0, close: async () => {} }
  const server = net.createServer((s) => {
    sockets.add(s)
    up.open++
    s.on('data', (d: Buffer) => {
      if (!d.toString('latin1').includes('\r\n\r\n')) return
      up.requests++
      s.write(answer, 'latin1')
    })
    s.on('error', () => s.destroy()).on('close', () => { up.closed++; sockets.delete(s) })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  up.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  up.close = () => new Promise<void>((resolve) => { for (const s of sockets) s.destroy(); server.close(() => resolve()) })
  return up
}

const config = { timeouts: { idleMs: IDLE_MS, requestMs: 120_000, headersMs: 60_000 }, log: { access: false }, healthCheck: { enabled: false } }

t.test('a body that stops mid-way: the client connection is closed after the part it got, no retry', async (t) => {
  const up = await stallingUpstream('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n' + 'a'.repeat(40))
  const lb = await startClaylb({ args: ['--upstream', up.url], config })
  t.teardown(async () => { await lb.stop(); await up.close() })
  const c = await RawClient.connect(Number(new URL(lb.url).port))
  t.teardown(() => c.destroy())
  await c.write('GET /stall HTTP/1.1\r\nHost: x\r\n\r\n')
  t.ok(await c.waitFor(() => c.buffer.includes('a'.repeat(40)), 30_000), 'the client got the head and the 40 bytes sent')
  t.ok(await c.waitClosed(30_000), 'then the proxy closed the client connection')
  t.match(c.buffer, /^HTTP\/1\.1 200 OK\r\n/)
  t.match(c.buffer, /content-length: 100\r\n/i, 'the client knows the answer is short: 40 of 100 bytes')
  t.equal(c.buffer.slice(c.buffer.indexOf('\r\n\r\n') + 4), 'a'.repeat(40), 'no other byte after the part')
  t.equal(await settle(() => up.closed, (n) => n >= 1, 30_000), 1, 'the upstream connection was cut too')
  t.equal(up.requests, 1, 'the GET was not retried: its answer had started')
  const s = await scrape(lb.admin)
  t.equal(value(s, 'claylb_upstream_tries_total', { outcome: 'timeout' }), 1, 'the try counted as a timeout')
})

t.test('a head, then silence: nothing went to the client yet, so it gets a 504 problem', async (t) => {
  const up = await stallingUpstream('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n')
  const lb = await startClaylb({ args: ['--upstream', up.url], config })
  t.teardown(async () => { await lb.stop(); await up.close() })
  const c = await RawClient.connect(Number(new URL(lb.url).port))
  t.teardown(() => c.destroy())
  await c.write('POST /stall HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc')
  const r = await c.readResponse(30_000)
  t.equal(r?.status, 504)
  t.equal(problemOf(r!).type, 'urn:claylb:problem:upstream-timeout')
  t.equal(problemOf(r!).detail, 'the upstream stopped sending its answer', 'the client is told what happened, not where')
  const logged = await lb.waitForLog((l) => /sent no byte of its answer for 800 ms$/.test(String(l['msg'])))
  t.equal(logged['path'], '/stall', 'the log names the upstream, the silence and the request')
  t.equal(up.requests, 1, 'sent once, never retried')
})

t.test('a body that keeps coming, slower than the sweep but faster than idleMs, is not cut', async (t) => {
  // one byte every IDLE_MS / 4 for 3 × IDLE_MS: silence never lasts idleMs, the whole answer arrives
  const sockets = new Set<net.Socket>()
  const n = 12
  const server = net.createServer((s) => {
    sockets.add(s)
    s.on('error', () => s.destroy()).on('close', () => sockets.delete(s))
    s.once('data', () => {
      s.write(`HTTP/1.1 200 OK\r\ncontent-length: ${n}\r\n\r\n`)
      let sent = 0
      const tick = setInterval(() => { s.write('b'); if (++sent === n) clearInterval(tick) }, IDLE_MS / 4)
      s.on('close', () => clearInterval(tick))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const lb = await startClaylb({ args: ['--upstream', `http://127.0.0.1:${(server.address() as AddressInfo).port}`], config })
  t.teardown(async () => { await lb.stop(); for (const s of sockets) s.destroy(); server.close() })
  const c = await RawClient.connect(Number(new URL(lb.url).port))
  t.teardown(() => c.destroy())
  await c.write('GET /trickle HTTP/1.1\r\nHost: x\r\n\r\n')
  const r = await c.readResponse(60_000)
  t.equal(r?.status, 200)
  t.equal(r?.body, 'b'.repeat(n), 'the whole trickled body')
  t.notOk(c.closed, 'the connection stays open')
})
