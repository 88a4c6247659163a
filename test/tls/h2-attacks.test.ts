/**
 * HTTP/2 attacks on the TLS listener, with raw frames and with node:http2: a rapid reset flood
 * (CVE-2023-44487), a CONTINUATION flood, header lists past limits.maxHeaderBytes; and h2c — an
 * `Upgrade: h2c` or an HTTP/2 preface on cleartext — never tunnelled. Each must be bounded: the
 * session is cut or the stream refused, nothing reaches the upstream that should not, nothing stays
 * in flight, and the proxy serves the next client.
 */
import t, { type Test } from 'tap'
import { startBackend, recordBody } from '../helpers/backend.js'
import { startClaylb } from '../helpers/claylb.js'
import { Pki } from '../helpers/pki.js'
import { RawClient } from '../helpers/raw.js'
import { FLAG, RawH2, TYPE, frame, literal, literalIndexed, requestBlock } from '../helpers/h2-frames.js'
import { settle, upstreamInflight } from '../helpers/rig.js'
import { h2, h2session } from '../helpers/tls-client.js'

const pki = new Pki()
const a = pki.issue(['a.test'])
const backend = await startBackend(recordBody)
const lb = await startClaylb({
  args: ['--upstream', backend.url],
  config: { healthCheck: { enabled: false }, limits: { maxHeaderBytes: 16_384 }, listen: { http2: true, tls: { cert: a.cert, key: a.key } } },
})
t.teardown(async () => { await lb.stop('SIGKILL'); await backend.close() })
const port = Number(new URL(lb.url).port)

/** a fresh client is still served (the attack cost the proxy nothing lasting) */
async function stillServes (t: Test, what: string): Promise<void> {
  const s = await h2session(port, 'a.test', pki.caPem)
  try {
    t.equal((await h2(s, { path: '/still' })).status, 200, `after ${what}: a new HTTP/2 client is served`)
  } finally {
    s.close()
  }
  t.equal(await settle(() => upstreamInflight(lb), (n) => n === 0, 10_000), 0, `after ${what}: nothing left in flight upstream`)
}

const seen = (path: string): number => backend.seen.filter((r) => r.url === path).length

t.test('rapid reset: a flood of streams opened and reset at once ends the session early and opens no upstream connections', async (t) => {
  // past the allowance (256), well inside nghttp2's own burst of 1000
  const N = 300
  let connects = 0
  const onConnect = (): void => { connects++ }
  backend.server.on('connection', onConnect)
  t.teardown(() => { backend.server.off('connection', onConnect) })
  const c = await RawH2.connect(port)
  t.teardown(() => c.destroy())
  const cancel = Buffer.alloc(4)
  cancel.writeUInt32BE(8) // CANCEL
  // each stream's request would wait 2 s upstream. The first block puts its fields in the HPACK
  // dynamic table, the others name them by index (x-delay-ms 62, :authority 63, :path 64), so the
  // whole flood is one write of 8 KB the server reads at once: no bytes left unread when it closes,
  // which would turn its close into a TCP reset that can take the GOAWAY with it
  const first = Buffer.concat([Buffer.from([0x82, 0x87]), literalIndexed(':path', '/rapid'), literalIndexed(':authority', 'a.test'), literalIndexed('x-delay-ms', '2000')])
  const next = Buffer.from([0x82, 0x87, 0x80 | 64, 0x80 | 63, 0x80 | 62])
  const flood: Buffer[] = []
  for (let i = 0; i < N; i++) flood.push(frame(TYPE.HEADERS, FLAG.END_STREAM | FLAG.END_HEADERS, 1 + 2 * i, i === 0 ? first : next), frame(TYPE.RST_STREAM, 0, 1 + 2 * i, cancel))
  await c.write(Buffer.concat(flood))
  await settle(() => c.goaway() !== undefined || c.closed, (v) => v, 10_000)
  const g = c.goaway()
  t.ok(g !== undefined, `the server sent a GOAWAY (closed ${c.closed})`)
  t.equal(g?.code, 0xb, `ENHANCE_YOUR_CALM (last stream ${g?.lastStream}: Node 20 counts each reset as nghttp2 reads it, Node 22+ after the read)`)
  t.ok(await settle(() => c.closed, (v) => v, 10_000), 'and the connection closed')
  // a stream reset in the same read as its HEADERS never starts an exchange: no upstream connection
  // for it (before, each reset stream's try had connected and was then destroyed)
  t.ok(connects < 20, `the upstream accepted ${connects} connections for ${N} reset streams`)
  t.ok(seen('/rapid') < 20, `the upstream saw ${seen('/rapid')} of ${N} reset requests`)
  await stillServes(t, 'a rapid reset flood')
})

t.test('rapid reset: resets within the allowance (a page of cancelled requests) keep the session', async (t) => {
  const c = await RawH2.connect(port)
  t.teardown(() => c.destroy())
  const cancel = Buffer.alloc(4)
  cancel.writeUInt32BE(8) // CANCEL
  const block = requestBlock('/cancelled')
  const frames: Buffer[] = []
  for (let i = 0; i < 200; i++) frames.push(frame(TYPE.HEADERS, FLAG.END_STREAM | FLAG.END_HEADERS, 1 + 2 * i, block), frame(TYPE.RST_STREAM, 0, 1 + 2 * i, cancel))
  await c.write(Buffer.concat(frames))
  await c.write(frame(TYPE.HEADERS, FLAG.END_STREAM | FLAG.END_HEADERS, 401, requestBlock('/after-cancels')))
  t.ok(await settle(() => c.frames.some((f) => f.stream === 401 && (f.flags & FLAG.END_STREAM) !== 0), (v) => v, 10_000), 'the request after 200 resets is answered')
  t.equal(c.goaway(), undefined, 'no GOAWAY')
})

t.test('rapid reset: streams reset after their request reached the upstream count too', async (t) => {
  const c = await RawH2.connect(port)
  t.teardown(() => c.destroy())
  const cancel = Buffer.alloc(4)
  cancel.writeUInt32BE(8) // CANCEL
  const block = requestBlock('/late-reset', 'a.test', [literal('x-delay-ms', '5000')])
  let streams = 0
  // each stream is reset only once its request is upstream (its exchange running): paced by progress
  for (; streams < 400 && c.goaway() === undefined && !c.closed; streams++) {
    const id = 1 + 2 * streams
    const before = seen('/late-reset')
    if (!await c.write(frame(TYPE.HEADERS, FLAG.END_STREAM | FLAG.END_HEADERS, id, block))) break
    if (await settle(() => seen('/late-reset') > before || c.goaway() !== undefined, (v) => v, 10_000, 2) !== true) break
    await c.write(frame(TYPE.RST_STREAM, 0, id, cancel))
  }
  await settle(() => c.goaway() !== undefined, (v) => v, 10_000)
  t.equal(c.goaway()?.code, 0xb, `GOAWAY ENHANCE_YOUR_CALM after ${streams} streams`)
  // a stream answered before its reset (a machine stalled past the 5 s delay) pays one back
  const served = new Set(c.frames.filter((f) => f.type === TYPE.DATA && (f.flags & FLAG.END_STREAM) !== 0).map((f) => f.stream)).size
  t.ok(streams <= 258 + served, `once the allowance (256) was spent (${served} answered before their reset)`)
  await stillServes(t, 'late resets')
})

t.test('CONTINUATION flood: a header block that never ends is cut off', async (t) => {
  const c = await RawH2.connect(port)
  t.teardown(() => c.destroy())
  await c.write(frame(TYPE.HEADERS, 0, 1, requestBlock('/continuation')))
  let sent = 0
  for (; sent < 20_000 && !c.closed; sent++) {
    if (!await c.write(frame(TYPE.CONTINUATION, 0, 1, literal(`x-h${sent}`, 'v'.repeat(100))))) break
  }
  t.ok(await settle(() => c.closed, (v) => v, 10_000), `the connection was closed (after ${sent} CONTINUATION frames, GOAWAY ${JSON.stringify(c.goaway())})`)
  t.ok(sent < 20_000, 'before the flood ended')
  t.equal(seen('/continuation'), 0, 'the unfinished request never reached the upstream')
  await stillServes(t, 'a CONTINUATION flood')
})

t.test('a header list past limits.maxHeaderBytes: that stream refused, the session goes on', async (t) => {
  // raw: a HEADERS + CONTINUATION pair of 20 KB, then a small request on the same session
  const c = await RawH2.connect(port)
  t.teardown(() => c.destroy())
  await c.write(frame(TYPE.HEADERS, FLAG.END_STREAM, 1, requestBlock('/big-raw', 'a.test', [literal('x-big', 'b'.repeat(10_000))])))
  await c.write(frame(TYPE.CONTINUATION, FLAG.END_HEADERS, 1, literal('x-big2', 'b'.repeat(10_000))))
  await c.write(frame(TYPE.HEADERS, FLAG.END_STREAM | FLAG.END_HEADERS, 3, requestBlock('/small-raw')))
  const ended = (id: number): boolean => c.frames.some((f) => f.stream === id && ((f.flags & FLAG.END_STREAM) !== 0 || f.type === TYPE.RST_STREAM))
  t.ok(await settle(() => ended(1) && ended(3), (v) => v, 10_000), 'both streams were answered or reset')
  t.equal(seen('/big-raw'), 0, 'the oversized request never reached the upstream')
  t.equal(seen('/small-raw'), 1, 'the request after it on the same session did')
  t.equal(c.goaway(), undefined, 'no GOAWAY: only the offending stream was refused')

  // node:http2, as a session's first request (sent before the client acknowledged the limit, so
  // nghttp2 lets it through): claylb's own 431, a problem, not the upstream's (it never gets there)
  const s = await h2session(port, 'a.test', pki.caPem)
  t.teardown(() => s.close())
  const big = await h2(s, { path: '/big-node', headers: { 'x-big': 'c'.repeat(20_000) } })
  t.equal(big.status, 431, 'node:http2 client: 431')
  t.equal(big.headers['content-type'], 'application/problem+json', 'a problem+json answer from claylb')
  t.match(JSON.parse(big.body), { status: 431, type: /headers-too-large$/, detail: /exceed 16384 bytes/ })
  t.equal((await h2(s, { path: '/after-big' })).status, 200, 'then the same session is served')
  // once the client acknowledged SETTINGS_MAX_HEADER_LIST_SIZE, nghttp2 refuses the stream itself
  await t.rejects(h2(s, { path: '/big-node-2', headers: { 'x-big': 'c'.repeat(20_000) } }), { code: 'ERR_HTTP2_STREAM_ERROR' }, 'after the settings: RST_STREAM')
  t.equal((await h2(s, { path: '/after-big-2' })).status, 200, 'and the session goes on')
  t.equal(seen('/big-node') + seen('/big-node-2'), 0, 'the oversized requests never reached the upstream')
  await stillServes(t, 'oversized header lists')
})

t.test('h2c is never tunnelled: Upgrade: h2c and an HTTP/2 preface on cleartext', async (t) => {
  const plain = await startClaylb({ args: ['--upstream', backend.url], config: { healthCheck: { enabled: false } } })
  t.teardown(() => plain.stop('SIGKILL'))
  const plainPort = Number(new URL(plain.url).port)
  const c = await RawClient.connect(plainPort)
  t.teardown(() => c.destroy())
  await c.write('GET /h2c HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n')
  const r = await c.readResponse(10_000)
  t.equal(r?.status, 200, 'the request is answered as HTTP/1.1 (the upgrade offer ignored), never 101')
  t.ok(await c.waitClosed(10_000), 'and the connection closes after it (nothing after an upgrade offer is read as HTTP/1.1)')
  const up = backend.seen.find((s) => s.url === '/h2c')
  t.ok(up !== undefined, 'the upstream got the plain request')
  t.notOk(up !== undefined && ('upgrade' in up.headers || 'http2-settings' in up.headers), 'without Upgrade or HTTP2-Settings')

  const p = await RawClient.connect(plainPort)
  t.teardown(() => p.destroy())
  const before = backend.count
  await p.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'), frame(TYPE.SETTINGS, 0, 0), frame(TYPE.HEADERS, FLAG.END_STREAM | FLAG.END_HEADERS, 1, requestBlock('/prior'))]))
  const pr = await p.readResponse(10_000)
  t.ok(pr !== undefined && pr.status >= 400, `an HTTP/2 preface on cleartext is refused (${pr?.status})`)
  t.ok(await p.waitClosed(10_000), 'and the connection closed')
  t.equal(backend.count, before, 'nothing reached the upstream')
})
