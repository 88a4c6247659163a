/**
 * Slow request bodies are the client's fault (issue 23 #12): a body with no byte for
 * timeouts.clientBodyMs is answered 408 (problem+json), never 504, and never counted against the
 * upstream. A small body (Content-Length <= 64 KiB) is read whole before an upstream is picked, so a
 * client trickling it never holds an upstream connection: the upstream sees none. A large one streams,
 * so its upstream connection is closed with the 408. A body that keeps coming, and a normal POST, are
 * untouched; a body still incomplete when timeouts.requestMs passes is a 408 too (it was a 504).
 * Paced by what each side saw; the bounds only keep a broken build from hanging.
 */
import t, { type Test } from 'tap'
import { RawClient, problemOf } from '../helpers/raw.js'
import { listenRaw, readRequests } from '../helpers/raw-upstream.js'
import { startClaylb } from '../helpers/claylb.js'
import { settle } from '../helpers/rig.js'
import { scrape, value } from '../helpers/metrics.js'

const BODY_MS = 600

/** counts connections, bytes and closes; answers 200 to every request read whole */
async function countingUpstream () {
  const counts = { conns: 0, closed: 0, bytes: 0, requests: 0 }
  const raw = await listenRaw((s) => {
    counts.conns++
    s.on('close', () => { counts.closed++ })
    s.on('data', (d: Buffer) => { counts.bytes += d.length })
    readRequests(s, () => {
      counts.requests++
      s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok')
    })
  })
  return Object.assign(counts, { url: raw.url, close: raw.close })
}

async function rig (t: Test, timeouts: Record<string, number> = { clientBodyMs: BODY_MS }) {
  const up = await countingUpstream()
  const lb = await startClaylb({ args: ['--upstream', up.url], config: { timeouts, healthCheck: { enabled: false }, log: { access: false } } })
  t.teardown(async () => { await lb.stop(); await up.close() })
  const c = await RawClient.connect(Number(new URL(lb.url).port))
  t.teardown(() => c.destroy())
  return { up, lb, c }
}

t.test('a small body that stops: 408, and the upstream never saw a connection', async (t) => {
  const { up, lb, c } = await rig(t)
  await c.write('POST /orders HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n' + 'x'.repeat(10))
  const r = await c.readResponse(30_000)
  t.equal(r?.status, 408, '408')
  t.equal(problemOf(r!).type, 'urn:claylb:problem:request-timeout')
  t.match(r!.headers['connection'], /close/, 'the connection closes: the rest of the body is not a next request')
  t.ok(await c.waitClosed(30_000), 'closed')
  t.equal(up.conns, 0, 'the upstream saw no connection')
  const s = await scrape(lb.admin)
  t.equal(value(s, 'claylb_upstream_tries_total', { outcome: 'timeout' }), 0, 'nothing counted against an upstream')
})

t.test('a large body that stops: 408, its upstream connection closed, not the upstream\'s fault', async (t) => {
  const { up, lb, c } = await rig(t)
  await c.write('POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 1048576\r\n\r\n' + 'x'.repeat(100_000))
  t.equal(await settle(() => up.bytes, (n) => n >= 100_000, 30_000) >= 100_000, true, 'the head and the first part reached the upstream')
  const r = await c.readResponse(30_000)
  t.equal(r?.status, 408, '408, not 504')
  t.equal(problemOf(r!).type, 'urn:claylb:problem:request-timeout')
  t.equal(await settle(() => up.closed, (n) => n >= 1, 30_000), 1, 'the upstream connection was closed')
  const s = await scrape(lb.admin)
  t.equal(value(s, 'claylb_upstream_tries_total', { outcome: 'local' }), 1, 'the try ended as the client\'s (local)')
  t.equal(value(s, 'claylb_upstream_tries_total', { outcome: 'timeout' }), 0, 'not as the upstream\'s timeout')
})

t.test('a body that keeps coming, a piece more often than clientBodyMs, and a normal POST: 200', async (t) => {
  // a piece every quarter of clientBodyMs, for three times clientBodyMs in all: silence never lasts it
  const bodyMs = 1200
  const { up, c } = await rig(t, { clientBodyMs: bodyMs })
  await c.write('POST /orders HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n')
  for (let i = 0; i < 12; i++) {
    await new Promise((resolve) => setTimeout(resolve, bodyMs / 4))
    await c.write('x')
  }
  const r = await c.readResponse(30_000)
  t.equal(r?.status, 200, 'the slow but moving body is forwarded')
  await c.write('POST /orders HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello')
  t.equal((await c.readResponse(30_000))?.status, 200, 'a normal POST')
  t.equal(up.requests, 2)
})

t.test('a body still incomplete when timeouts.requestMs passes: 408, not 504', async (t) => {
  const { up, c } = await rig(t, { requestMs: 1500 })
  await c.write('POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n' + 'x'.repeat(100_000))
  const r = await c.readResponse(30_000)
  t.equal(r?.status, 408, 'the client\'s fault')
  t.equal(problemOf(r!).type, 'urn:claylb:problem:request-timeout')
  t.equal(await settle(() => up.closed, (n) => n >= 1, 30_000), 1, 'the upstream connection was closed')
})
