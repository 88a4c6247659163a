/**
 * Header attacks on raw sockets: control characters, oversized blocks, 10,000 headers,
 * Connection-listed names in odd case, spoofed forwarding headers, and an upstream trying
 * response splitting. Each asserts the client's answer and the upstream's bytes.
 */
import t from 'tap'
import { startRawUpstream } from '../helpers/backend.js'
import { startClaylb } from '../helpers/claylb.js'
import { listenConfig, overTls } from '../helpers/transport.js'
import { RawClient, problemOf, type RawResponse } from '../helpers/raw.js'
import { assertRefused, startRig, type Rig } from '../helpers/rig.js'

const GET = 'GET /h HTTP/1.1\r\nHost: x\r\n'

async function send (rig: Rig, bytes: string): Promise<RawResponse | undefined> {
  const c = await RawClient.connect(rig.port)
  try {
    await c.write(bytes).catch(() => {})
    return await c.readResponse(5000)
  } finally {
    c.destroy()
  }
}

/** A request whose whole head (request line to the blank line) is `total` bytes long. */
function headOfSize (total: number): string {
  const base = `${GET}X-Big: \r\n\r\n`
  return `${GET}X-Big: ${'a'.repeat(total - base.length)}\r\n\r\n`
}

function manyHeaders (n: number): string {
  let s = ''
  for (let i = 0; i < n; i++) s += `x-h${i}: ${i}\r\n`
  return s
}

// one proxy (default limits) and one upstream for most of the file; each test measures from its own mark
const rig = await startRig(t)

t.test('control characters and bad names in request headers: 400, nothing upstream', async (t) => {
  const m = rig.mark()
  const cases: Array<[string, string]> = [
    ['CR inside a value', `${GET}X-A: a\rInjected: 1\r\n\r\n`],
    ['LF inside a value', `${GET}X-A: a\nInjected: 1\r\n\r\n`],
    ['NUL inside a value', `${GET}X-A: a\0b\r\n\r\n`],
    ['DEL inside a value', `${GET}X-A: a\x7fb\r\n\r\n`],
    ['NUL inside a name', `${GET}X\0A: a\r\n\r\n`],
    ['space inside a name', `${GET}X A: a\r\n\r\n`],
    ['empty name', `${GET}: a\r\n\r\n`],
    ['non-token name', `${GET}X(A): a\r\n\r\n`],
    ['obs-fold', `${GET}X-A: a\r\n\tb\r\n\r\n`],
    ['CRLF injection into Host', 'GET /h HTTP/1.1\r\nHost: x\rX-Injected: 1\r\n\r\n'],
  ]
  for (const [name, bytes] of cases) await assertRefused(t, rig, name, bytes, 400)
  t.notMatch(rig.since(m).wire, /Injected/i)
})

t.test('header block size: just under the limit passes whole, just over and far over are 431', async (t) => {
  const m = rig.mark() // limits.maxHeaderBytes: the default 16384
  const under = headOfSize(16_384 - 64)
  const r = await send(rig, under)
  t.equal(r?.status, 200, 'a head just under the limit passes')
  t.equal(rig.since(m).count, 1)
  t.equal(rig.since(m).seen[0]?.headers['x-big']?.length, under.indexOf('\r\n\r\n') - under.indexOf('X-Big: ') - 7, 'the big header arrives whole')

  await assertRefused(t, rig, 'just over the limit', headOfSize(16_384 + 64), 431)
  await assertRefused(t, rig, '1 MiB of header', headOfSize(1 << 20), 431)
  await assertRefused(t, rig, '10,000 small headers under the default limit', `${GET}${manyHeaders(10_000)}\r\n`, 431)
  t.equal(rig.since(m).count, 1, 'only the request under the limit reached the upstream')
})

t.test('10,000 headers within raised limits: every one reaches the upstream, body and credentials too', async (t) => {
  const big = await startRig(t, { config: { limits: { maxHeaderBytes: 256 * 1024, maxHeaders: 20_000 } } })
  const c = await RawClient.connect(big.port)
  t.teardown(() => c.destroy())
  await c.write(`POST /many HTTP/1.1\r\nHost: x\r\n${manyHeaders(10_000)}Authorization: Bearer last\r\nContent-Length: 5\r\n\r\nhello`)
  const r = await c.readResponse(10_000)
  t.equal(r?.status, 200)
  t.equal(r?.body, 'got 5', 'the body declared after 10,000 headers arrived')
  const seen = big.backend.seen[0]!
  t.equal(seen.body, 'hello')
  t.equal(seen.headers['authorization'], 'Bearer last', 'a header after 10,000 others is not dropped')
  t.equal(seen.rawHeaders.filter((h, i) => i % 2 === 0 && h.startsWith('x-h')).length, 10_000, 'all 10,000 arrived')
  t.equal(seen.headers['x-h9999'], '9999')
})

t.test('obs-text and tabs in values pass byte for byte', async (t) => {
  const m = rig.mark()
  const r = await send(rig, `${GET}X-Latin: caf\xe9 \xff\tend\r\n\r\n`)
  t.equal(r?.status, 200)
  t.match(rig.since(m).wire, /\r\nX-Latin: caf\xe9 \xff\tend\r\n/, 'the upstream got the same bytes')
})

t.test('Connection-listed and hop-by-hop headers are stripped whatever their case; framing and the proxy\'s own headers survive', async (t) => {
  const m = rig.mark()
  const c = await RawClient.connect(rig.port)
  t.teardown(() => c.destroy())
  await c.write([
    'POST /c HTTP/1.1', 'Host: example.test',
    'cOnNeCtIoN: X-Secret, KEEP-ALIVE, x-FORWARDED-for, X-Forwarded-Proto, Content-Length, HOST',
    'connection: x-other', 'X-SECRET: 1', 'x-Other: 2', 'Keep-Alive: timeout=9', 'tE: trailers',
    'PROXY-CONNECTION: keep-alive', 'Proxy-Authorization: Basic eA==', 'TRAILER: X-T', 'Upgrade: h2c',
    'HTTP2-Settings: AAMAAABk', 'X-Kept: yes', 'Content-Length: 5', '', 'hello',
  ].join('\r\n'))
  const r = await c.readResponse()
  t.equal(r?.status, 200)
  t.equal(r?.body, 'got 5', 'Content-Length listed in Connection still frames the body')
  const seen = rig.since(m).seen[0]!
  const names = seen.rawHeaders.filter((_h, i) => i % 2 === 0).map((h) => h.toLowerCase())
  for (const gone of ['x-secret', 'x-other', 'keep-alive', 'te', 'proxy-connection', 'proxy-authorization', 'trailer', 'upgrade', 'http2-settings']) {
    t.notOk(names.includes(gone), `${gone} is not forwarded`)
  }
  t.notOk(seen.rawHeaders.some((h, i) => i % 2 === 0 && h.toLowerCase() === 'connection' && /secret|other/i.test(seen.rawHeaders[i + 1]!)), 'the client\'s Connection header is not forwarded')
  t.equal(seen.headers['x-kept'], 'yes')
  t.equal(seen.headers['host'], 'example.test', 'Host listed in Connection is kept')
  t.equal(seen.body, 'hello')
  t.equal(seen.headers['x-forwarded-for'], '127.0.0.1', 'the proxy\'s x-forwarded-for survives being listed')
  t.equal(seen.headers['x-forwarded-proto'], overTls ? 'https' : 'http')
})

t.test('spoofed forwarding headers from an untrusted client: x-forwarded-for is the peer alone; proto and host are the proxy\'s', async (t) => {
  const m = rig.mark()
  const r = await send(rig, [
    'GET /f HTTP/1.1', 'Host: real.test', 'X-Forwarded-For: 1.1.1.1', 'x-forwarded-for: 2.2.2.2, 3.3.3.3',
    'X-FORWARDED-PROTO: https', 'X-Forwarded-Host: evil.test', 'x-forwarded-host: evil2.test',
    'Forwarded: for=6.6.6.6;host=evil.test;proto=https', '', '',
  ].join('\r\n'))
  t.equal(r?.status, 200)
  const raw = rig.since(m).seen[0]!.rawHeaders
  const values = (name: string): string[] => raw.filter((_h, i) => i % 2 === 1 && raw[i - 1]!.toLowerCase() === name)
  t.same(values('x-forwarded-for'), ['127.0.0.1'], 'one x-forwarded-for, the real peer only: the client\'s claimed hops are dropped')
  t.same(values('x-forwarded-proto'), [overTls ? 'https' : 'http'], 'one x-forwarded-proto, set by the proxy')
  t.same(values('x-forwarded-host'), ['real.test'], 'one x-forwarded-host, the request\'s Host')
  t.same(values('forwarded'), ['for=6.6.6.6;host=evil.test;proto=https'], 'forwarded is passed as it came (documented: the upstream must not trust it)')
})

t.test('an upstream trying response splitting or broken headers: 502, nothing of it reaches the client', async (t) => {
  const cases: Array<[string, string]> = [
    ['bare LF inside a header value', 'HTTP/1.1 200 OK\r\nX-A: a\nSet-Cookie: evil=1\r\nContent-Length: 2\r\n\r\nok'],
    ['CR inside a header value', 'HTTP/1.1 200 OK\r\nX-A: a\rSet-Cookie: evil=1\r\nContent-Length: 2\r\n\r\nok'],
    ['NUL inside a header value', 'HTTP/1.1 200 OK\r\nX-A: a\0evil\r\nContent-Length: 2\r\n\r\nok'],
    ['two different Content-Lengths', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\nok'],
    ['CL and TE together', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
    ['a malformed status line', 'HTTP/1.1 2OO OK\r\nContent-Length: 2\r\n\r\nok'],
  ]
  // one upstream, one proxy: GET /case/N gets answer N
  const up = await startRawUpstream((head) => cases[Number(/^GET \/case\/(\d+)/.exec(head)?.[1])]![1])
  const lb = await startClaylb({ args: ['--upstream', up.url], config: { retry: { attempts: 1 }, healthCheck: { enabled: false }, log: { access: false }, ...listenConfig() } })
  t.teardown(async () => { await lb.stop('SIGKILL'); await up.close() })
  for (const [i, [name]] of cases.entries()) {
    const c = await RawClient.connect(Number(new URL(lb.url).port))
    await c.write(`GET /case/${i} HTTP/1.1\r\nHost: x\r\n\r\n`)
    const r = await c.readResponse(5000)
    c.destroy()
    t.equal(r?.status, 502, `${name}: 502`)
    if (r !== undefined) t.equal(problemOf(r).status, 502, `${name}: problem+json`)
    t.notMatch(r?.head ?? '', /evil|set-cookie/i, `${name}: nothing of the upstream's head reaches the client`)
    t.equal(up.count, i + 1, `${name}: asked once`)
  }
})

t.test('an upgrade claylb does not tunnel (h2c, as curl --http2 offers) is answered as the plain request it also is', async (t) => {
  const m = rig.mark()
  const c = await RawClient.connect(rig.port)
  t.teardown(() => c.destroy())
  await c.write('GET /h2c HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n')
  const r = await c.readResponse()
  t.equal(r?.status, 200, 'answered over HTTP/1.1, not dropped')
  t.equal(r?.body, 'got 0')
  t.ok(await c.waitClosed(5000), 'then closed (the parser has let go of the connection)')
  const seen = rig.since(m).seen[0]!
  t.equal(seen.url, '/h2c')
  t.equal(seen.headers['upgrade'], undefined, 'no upgrade offer upstream')
  t.equal(seen.headers['http2-settings'], undefined)
  t.equal(rig.since(m).count, 1)

  // with a body the request cannot be read any more: refused, nothing upstream
  await assertRefused(t, rig, 'h2c upgrade with a body', 'POST /h2c HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nContent-Length: 5\r\n\r\nhello', 501)
})
