/**
 * The idempotency gate on the raw engine, on raw sockets: a keyed request's body is read whole (in
 * pieces, chunked, after a 100 Continue) before the claim, forwarded once with the record's headers
 * (never the client's own), its answer held back until recorded, then replayed byte for byte; a
 * client that leaves mid-body executes nothing and leaves no claim; a body over the limit is a 413.
 */
import t from 'tap'
import { startBackend } from '../helpers/backend.js'
import { startClaylb } from '../helpers/claylb.js'
import { RawClient, problemOf } from '../helpers/raw.js'
import { startRedis } from '../helpers/redis.js'
import { settle } from '../helpers/rig.js'

const redis = await startRedis({ useEnv: false })
t.teardown(() => redis.close())
const bodies: string[] = []
const upstream = await startBackend((req, res) => {
  let body = ''
  req.setEncoding('latin1')
  req.on('data', (d: string) => { body += d })
  req.on('end', () => {
    bodies.push(body)
    res.setHeader('content-type', 'text/plain')
    res.setHeader('x-record-id', String(req.headers['claylb-idempotency-id']))
    res.setHeader('x-fence', String(req.headers['claylb-idempotency-fence']))
    res.end(`len=${body.length} n=${bodies.length}`)
  })
})
const lb = await startClaylb({
  args: ['--upstream', upstream.url],
  config: {
    redis: { url: redis.url },
    idempotency: { routes: [{ match: 'POST /orders', required: true }] },
    limits: { maxBodyBytes: 300_000 },
    log: { access: false },
  },
})
t.teardown(async () => { await lb.stop(); await upstream.close() })
const port = Number(new URL(lb.url).port)
let keys = 0
const newKey = (): string => `engine-keyed-${process.pid}-${++keys}`

async function connect (): Promise<RawClient> {
  const c = await RawClient.connect(port)
  t.teardown(() => c.destroy())
  return c
}

t.test('a 200 KB chunked body in pieces, after 100 Continue: forwarded whole, once, then replayed byte for byte', async (t) => {
  const key = newKey()
  const piece = 'p'.repeat(20_000)
  const c = await connect()
  await c.write(`POST /orders HTTP/1.1\r\nHost: x\r\nIdempotency-Key: ${key}\r\nClaylb-Idempotency-Id: ${'f'.repeat(64)}\r\n` +
    'Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n')
  t.ok(await c.waitFor(() => c.buffer.startsWith('HTTP/1.1 100 Continue\r\n\r\n'), 10_000), '100 Continue first')
  c.buffer = c.buffer.slice('HTTP/1.1 100 Continue\r\n\r\n'.length)
  const before = bodies.length
  for (let i = 0; i < 10; i++) await c.write(`${piece.length.toString(16)}\r\n${piece}\r\n`)
  t.equal(bodies.length, before, 'nothing forwarded while the body is still coming')
  await c.write('0\r\n\r\n')
  const first = await c.readResponse(30_000)
  t.equal(first?.status, 200)
  t.equal(first?.body, `len=200000 n=${before + 1}`, 'the upstream got the whole body')
  t.equal(bodies.length, before + 1, 'exactly once')
  t.match(first?.headers['x-record-id'], /^[0-9a-f]{64}$/, 'with the record id')
  t.not(first?.headers['x-record-id'], 'f'.repeat(64), 'never the id the client sent')
  t.equal(first?.headers['x-fence'], '1')
  // the same request again, on the same connection: from the record
  await c.write(`POST /orders HTTP/1.1\r\nHost: x\r\nIdempotency-Key: ${key}\r\nContent-Type: application/octet-stream\r\nContent-Length: 200000\r\n\r\n${piece.repeat(10)}`)
  const replay = await c.readResponse(30_000)
  t.equal(replay?.status, 200)
  t.equal(replay?.headers['idempotent-replayed'], 'true')
  t.equal(replay?.body, first?.body, 'the same body bytes')
  t.equal(replay?.headers['x-record-id'], first?.headers['x-record-id'])
  t.equal(bodies.length, before + 1, 'the upstream was not asked again')
})

t.test('a client that leaves mid-body: nothing executed, no claim left (the same key then executes)', async (t) => {
  const key = newKey()
  const before = bodies.length
  const c = await connect()
  await c.write(`POST /orders HTTP/1.1\r\nHost: x\r\nIdempotency-Key: ${key}\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n${'a'.repeat(400)}`)
  c.destroy()
  const again = await settle(async () => {
    const d = await connect()
    await d.write(`POST /orders HTTP/1.1\r\nHost: x\r\nIdempotency-Key: ${key}\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc`)
    return (await d.readResponse(10_000))?.status
  }, (s) => s !== 409, 10_000, 50)
  t.equal(again, 200, 'the key was free: executed')
  t.same(bodies.slice(before), ['abc'], 'the part of the abandoned body never reached the upstream')
})

t.test('a keyed body over limits.maxBodyBytes: 413, nothing forwarded, the connection closes', async (t) => {
  const before = bodies.length
  const c = await connect()
  await c.write(`POST /orders HTTP/1.1\r\nHost: x\r\nIdempotency-Key: ${newKey()}\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n`)
  const piece = 'z'.repeat(50_000)
  for (let i = 0; i < 7 && !c.closed; i++) await c.write(`${piece.length.toString(16)}\r\n${piece}\r\n`).catch(() => {})
  const r = await c.readResponse(10_000)
  t.equal(r?.status, 413)
  t.equal(problemOf(r!).type, 'urn:claylb:problem:body-too-large')
  t.ok(await c.waitClosed(10_000), 'closed: the rest is not read as a next request')
  t.equal(bodies.length, before, 'nothing reached the upstream')
})
