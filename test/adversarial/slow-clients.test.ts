/**
 * Slow and stuck clients: slowloris headers, a dripping body, a client that never reads. Small
 * timeouts from the config keep each case short; the bounds on elapsed time are generous (the machine
 * is shared) and only prove that a timeout, not the test's end, cut the client.
 */
import t from 'tap'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Backend } from '../helpers/backend.js'
import { RawClient, problemOf } from '../helpers/raw.js'
import { sleep } from '../helpers/http.js'
import { recordBody } from '../helpers/backend.js'
import { rssBytes, settle, startRig, upstreamInflight } from '../helpers/rig.js'

const timeouts = { headersMs: 1000, requestMs: 3000, idleMs: 2000 }

/** Writes one byte every `everyMs` until the connection closes or `maxMs` passes; resolves with the bytes sent. */
async function drip (c: RawClient, bytes: string, everyMs: number, maxMs: number): Promise<number> {
  const until = Date.now() + maxMs
  let i = 0
  while (!c.closed && i < bytes.length && Date.now() < until) {
    c.socket.write(bytes[i++]!, 'latin1')
    await sleep(everyMs)
  }
  return i
}

const TOTAL = 256 * 1024 * 1024
const CHUNK = Buffer.alloc(64 * 1024, 'x')

/** what the upstream did for /drip and /big */
const upstream = { dripAborted: false, written: 0, bigClosed: false, bigFinished: false }

/** /drip: waits for the whole body; /big: 256 MiB with backpressure; anything else: recordBody */
function handler (req: IncomingMessage, res: ServerResponse, b: Backend): void {
  if (req.url === '/drip') {
    req.resume()
    req.on('end', () => res.end('complete'))
    res.on('close', () => { if (!res.writableFinished) upstream.dripAborted = true })
    return
  }
  if (req.url !== '/big') return recordBody(req, res, b)
  req.resume()
  res.writeHead(200, { 'content-length': TOTAL })
  res.on('close', () => { upstream.bigClosed = true })
  res.on('finish', () => { upstream.bigFinished = true })
  const pump = (): void => {
    while (upstream.written < TOTAL && !res.destroyed) {
      upstream.written += CHUNK.length
      if (!res.write(CHUNK)) { res.once('drain', pump); return }
    }
    if (upstream.written >= TOTAL) res.end()
  }
  pump()
}

// one proxy with small timeouts and one upstream for the whole file
const rig = await startRig(t, { config: { timeouts }, handler })

t.test('slowloris: headers dripped a byte at a time are cut by the headers timeout; other clients are served meanwhile', async (t) => {
  const m = rig.mark()
  const slow = await RawClient.connect(rig.port)
  t.teardown(() => slow.destroy())
  const started = Date.now()
  const dripping = drip(slow, `GET /slow HTTP/1.1\r\nHost: x\r\nX-Drip: ${'z'.repeat(500)}\r\n\r\n`, 100, 15_000)

  // other clients, while the slow one drips
  const served: number[] = []
  while (!slow.closed && Date.now() - started < 15_000) {
    const c = await RawClient.connect(rig.port)
    await c.write('GET /other HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
    served.push((await c.readResponse(5000))?.status ?? 0)
    c.destroy()
    await sleep(200)
  }
  const sent = await dripping
  const elapsed = Date.now() - started
  t.ok(slow.closed, 'the slow client was disconnected')
  t.ok(elapsed >= timeouts.headersMs * 0.9, `not before the headers timeout (${elapsed} ms)`)
  t.ok(elapsed < timeouts.headersMs + 6000, `soon after it (${elapsed} ms for a ${timeouts.headersMs} ms timeout), not at the default 30 s check`)
  t.ok(sent < 200, `the drip was cut well before its end (${sent} bytes)`)
  const answer = await slow.readResponse(100)
  if (answer !== undefined) {
    t.equal(answer.status, 408, 'told why: 408')
    t.equal(problemOf(answer).status, 408)
  }
  t.ok(served.length > 0 && served.every((s) => s === 200), `every other client got 200 meanwhile (${served.length})`)
  t.notOk(rig.since(m).seen.some((s) => s.url === '/slow'), 'the slow request never reached the upstream')
})

t.test('a dripping body: answered 408 at the deadline, the upstream never saw it (a small body is read whole first), the connection closes, inflight back to 0', async (t) => {
  const m = rig.mark()
  const c = await RawClient.connect(rig.port)
  t.teardown(() => c.destroy())
  const started = Date.now()
  await c.write('POST /drip HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n')
  const dripping = drip(c, 'd'.repeat(1000), 100, 15_000)
  const r = await c.readResponse(15_000)
  const elapsed = Date.now() - started
  // the body is not all in when the request deadline passes: the client's fault
  t.equal(r?.status, 408, 'the client gets 408')
  if (r !== undefined) t.equal(problemOf(r).type, 'urn:claylb:problem:request-timeout')
  t.ok(elapsed >= timeouts.requestMs * 0.9 && elapsed < timeouts.requestMs + 6000, `at the request deadline (${elapsed} ms)`)
  t.ok(await c.waitClosed(5000), 'the connection closes: the rest of the body is never read as a next request')
  const sent = await dripping
  t.ok(sent < 1000, 'the drip was cut')
  t.equal(await c.readResponse(100), undefined, 'exactly one answer')
  t.equal(rig.since(m).count, 0, 'the upstream never saw the request: its 1000-byte body was to be read whole first')
  t.equal(await settle(() => upstreamInflight(rig.lb), (n) => n === 0, 5000), 0, 'admin /status inflight back to 0')
})

t.test('a client that never reads a large response: the upstream is paused, proxy memory stays bounded, the idle timeout cleans up', async (t) => {
  const rssBefore = rssBytes(rig.lb.pid)
  const c = await RawClient.connect(rig.port)
  t.teardown(() => c.destroy())
  c.pause()
  await c.write('GET /big HTTP/1.1\r\nHost: x\r\n\r\n')
  // let the pipes fill up
  await settle(() => upstream.written, (() => { let last = -1; return (w: number) => { const still = w === last; last = w; return still && w > 0 } })(), 10_000, 300)
  const stalledAt = upstream.written
  const rssStalled = rssBytes(rig.lb.pid)
  t.ok(stalledAt < 64 * 1024 * 1024, `the upstream was paused after ${(stalledAt / 1048576).toFixed(1)} MiB of ${TOTAL / 1048576} MiB`)
  t.ok(rssStalled - rssBefore < 64 * 1024 * 1024, `proxy RSS grew by ${((rssStalled - rssBefore) / 1048576).toFixed(1)} MiB, not by the response`)
  // nothing moves: the idle timeout ends it (a paused socket cannot see its close, so watch the upstream)
  t.ok(await settle(() => upstream.bigClosed, (x) => x, timeouts.idleMs + 8000), 'the idle timeout abandoned the upstream response')
  t.notOk(upstream.bigFinished, 'the upstream never had to produce the whole response')
  c.socket.resume()
  t.ok(await c.waitClosed(10_000), 'the stuck client connection was closed by the proxy')
  t.ok(c.received < TOTAL, `the client got ${(c.received / 1048576).toFixed(1)} MiB, never the whole response`)
  t.equal(await settle(() => upstreamInflight(rig.lb), (n) => n === 0, 5000), 0, 'admin /status inflight back to 0')
})
