/**
 * Framing and request smuggling, byte for byte on raw sockets. For every refused request: the client
 * gets a problem+json answer, the connection is closed (so a request pipelined behind the bad one is
 * never read), and the upstream received nothing. For every accepted one: the upstream received
 * exactly one request carrying exactly the body the proxy framed.
 */
import t from 'tap'
import { RawClient } from '../helpers/raw.js'
import { assertRefused, settle, startRig } from '../helpers/rig.js'

const POST = 'POST /a HTTP/1.1\r\nHost: x\r\n'

/**
 * name, bytes, expected status, and where the refusal happens: 'head' (the upstream gets no byte) or
 * 'body' (the head was valid and streaming may have begun: the upstream gets no COMPLETE request).
 */
const refused: Array<[string, string, number | number[], 'head' | 'body']> = [
  // Content-Length and Transfer-Encoding together: the classic CL.TE / TE.CL desync
  ['CL then TE', `${POST}Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG`, 400, 'head'],
  ['TE then CL', `${POST}Transfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n0\r\n\r\nG`, 400, 'head'],
  ['CL then TE in odd case', `${POST}content-length: 6\r\ntRaNsFeR-eNcOdInG: chunked\r\n\r\n0\r\n\r\nG`, 400, 'head'],
  // malformed and duplicate Content-Length
  ['two different CLs', `${POST}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!`, 400, 'head'],
  ['two equal CLs', `${POST}Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello`, 400, 'head'],
  ['CL list "5, 5"', `${POST}Content-Length: 5, 5\r\n\r\nhello`, 400, 'head'],
  ['CL "+5"', `${POST}Content-Length: +5\r\n\r\nhello`, 400, 'head'],
  ['CL "0x5"', `${POST}Content-Length: 0x5\r\n\r\nhello`, 400, 'head'],
  ['CL "-1"', `${POST}Content-Length: -1\r\n\r\nhello`, 400, 'head'],
  ['CL "1e3"', `${POST}Content-Length: 1e3\r\n\r\nhello`, 400, 'head'],
  ['CL "5x"', `${POST}Content-Length: 5x\r\n\r\nhello`, 400, 'head'],
  ['CL "5 5"', `${POST}Content-Length: 5 5\r\n\r\nhello`, 400, 'head'],
  ['CL huge', `${POST}Content-Length: 99999999999999999999999\r\n\r\nhello`, 400, 'head'],
  // Transfer-Encoding variants a downstream parser might read differently
  // (a coding Node's parser refuses only once the body starts: whichever check wins, it is refused)
  ['TE identity', `${POST}Transfer-Encoding: identity\r\n\r\nhello`, [400, 501], 'head'],
  ['TE "chunked, identity"', `${POST}Transfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, 400, 'head'],
  ['TE twice', `${POST}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, 400, 'head'],
  ['TE obs-folded', `${POST}Transfer-Encoding:\r\n chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, 400, 'head'],
  ['TE with space before colon', `${POST}Transfer-Encoding : chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, 400, 'head'],
  ['TE "xchunked"', `${POST}Transfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, [400, 501], 'head'],
  ['TE "gzip, chunked" (a coding the proxy cannot pass on)', `${POST}Transfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, 501, 'head'],
  // line endings and folding
  ['bare LF line endings', 'GET /a HTTP/1.1\nHost: x\n\n', 400, 'head'],
  ['bare CR after the request line', 'GET /a HTTP/1.1\rHost: x\r\n\r\n', 400, 'head'],
  ['obs-fold continuation line', 'GET /a HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n', 400, 'head'],
  // request targets
  ['target with a space', 'GET /a b HTTP/1.1\r\nHost: x\r\n\r\n', 400, 'head'],
  ['target with a NUL', 'GET /a\0b HTTP/1.1\r\nHost: x\r\n\r\n', 400, 'head'],
  ['target with a fragment', 'GET /public#/../admin HTTP/1.1\r\nHost: x\r\n\r\n', 400, 'head'],
  ['absolute-form naming another host', 'GET http://169.254.169.254/latest/meta-data HTTP/1.1\r\nHost: x\r\n\r\n', 400, 'head'],
  ['absolute-form with no Host', 'GET http://evil.test/ HTTP/1.1\r\n\r\n', 400, 'head'],
  ['asterisk-form on GET', 'GET * HTTP/1.1\r\nHost: x\r\n\r\n', 400, 'head'],
  ['two Host headers', 'GET /a HTTP/1.1\r\nHost: x\r\nHost: evil.test\r\n\r\n', 400, 'head'],
  ['no Host on HTTP/1.1', 'GET /a HTTP/1.1\r\n\r\n', 400, 'head'],
  ['CONNECT tunnel request', 'CONNECT evil.test:443 HTTP/1.1\r\nHost: evil.test:443\r\n\r\n', 501, 'head'],
  // chunked bodies: the head was fine, the body is not
  ['chunk size not hex', `${POST}Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n`, 400, 'body'],
  ['negative chunk size', `${POST}Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n`, 400, 'body'],
  ['chunk size overflowing 64 bits', `${POST}Transfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFF5\r\nhello\r\n0\r\n\r\n`, 400, 'body'],
  ['oversized chunk extension', `${POST}Transfer-Encoding: chunked\r\n\r\n5;a=${'b'.repeat(20_000)}\r\nhello\r\n0\r\n\r\n`, 400, 'body'],
  ['chunk data without its CRLF', `${POST}Transfer-Encoding: chunked\r\n\r\n5\r\nhelloX0\r\n\r\n`, 400, 'body'],
  ['chunk lines with bare LF', `${POST}Transfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n`, 400, 'body'],
  ['chunk size with a space inside', `${POST}Transfer-Encoding: chunked\r\n\r\n5 5\r\nhello\r\n0\r\n\r\n`, 400, 'body'],
]

// one proxy and one upstream for the whole file; each test measures from its own mark
const rig = await startRig(t)

t.test('refused framing: problem+json, connection closed, nothing (complete) upstream, no desync', async (t) => {
  const m = rig.mark()
  for (const [name, bytes, status, where] of refused) await assertRefused(t, rig, name, bytes, status, where)
  t.notMatch(rig.since(m).wire, /GET \/after|169\.254|evil\.test|admin/, 'nothing of them in the upstream byte stream')
})

t.test('a request hidden in a body stays body: the upstream sees one request with those exact bytes', async (t) => {
  const m = rig.mark()
  const hidden = 'GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n'
  const c = await RawClient.connect(rig.port)
  t.teardown(() => c.destroy())
  await c.write(`${POST}Content-Length: ${hidden.length}\r\n\r\n${hidden}`)
  const r = await c.readResponse()
  t.equal(r?.status, 200)
  t.equal(r?.body, `got ${hidden.length}`)
  const up = rig.since(m)
  t.equal(up.count, 1, 'exactly one request upstream')
  t.equal(up.seen[0]?.body, hidden, 'its body is the hidden request, byte for byte')
  t.notOk(up.seen.some((s) => s.url === '/smuggled'), 'the hidden request never ran')
  // the request on the wire: re-framed by the proxy with the exact length
  t.match(up.wire, /^POST \/a HTTP\/1\.1\r\n/)
  t.match(up.wire, new RegExp(`\r\ncontent-length: ${hidden.length}\r\n`, 'i'))
  t.ok(up.wire.endsWith(`\r\n\r\n${hidden}`), 'the upstream byte stream ends with the body, nothing after it')
})

t.test('a Content-Length shorter than what follows: the rest is a separate request the proxy parses itself', async (t) => {
  const m = rig.mark()
  const c = await RawClient.connect(rig.port)
  t.teardown(() => c.destroy())
  await c.write(`POST /shorter HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /next HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n`)
  const first = await c.readResponse()
  t.equal(first?.status, 200)
  t.equal(first?.body, 'got 5', 'the first request carried exactly its 5 bytes')
  // the trailing bytes are the proxy's own next request, and it is held to the same rules (CL+TE: 400)
  const second = await c.readResponse()
  t.equal(second?.status, 400, 'the "hidden" request is refused by the proxy like any other')
  t.ok(await c.waitClosed(5000))
  const up = rig.since(m)
  t.equal(up.count, 1, 'the upstream saw exactly one request')
  t.equal(up.seen[0]?.body, 'hello')
  t.notMatch(up.wire, /\/next/, 'the second request never reached the upstream byte stream')
  const logged = (): unknown[] => rig.since(m).access.filter((l) => l['path'] === '/shorter' || l['path'] === '/next').map((l) => l['path'])
  await settle(logged, (l) => l.length >= 1, 3000)
  t.same(logged(), ['/shorter'], 'the access log agrees: one proxied request')
})

t.test('a bad request pipelined while the one before it is upstream never takes over that one\'s answer', async (t) => {
  const m = rig.mark()
  const c = await RawClient.connect(rig.port)
  t.teardown(() => c.destroy())
  // the upstream answers after 300 ms, so the bad bytes arrive while the first answer is pending
  await c.write(`${POST}X-Delay-Ms: 300\r\nContent-Length: 5\r\n\r\nhello`)
  await settle(() => rig.since(m).count, (n) => n === 1, 5000)
  await c.write(`${POST}Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`)
  const first = await c.readResponse()
  t.equal(first?.status, 200, 'the first answer is the upstream\'s, not the refusal of the second request')
  t.equal(first?.body, 'got 5')
  const second = await c.readResponse()
  t.equal(second?.status, 400, 'then the refusal, in its turn')
  t.ok(await c.waitClosed(5000), 'then the connection closes')
  t.equal(rig.since(m).count, 1)
})

t.test('pipelined requests are answered in order, each framed on its own', async (t) => {
  const m = rig.mark()
  const c = await RawClient.connect(rig.port)
  t.teardown(() => c.destroy())
  await c.write(`${POST}Content-Length: 5\r\n\r\nhello` +
    `${POST}Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n` +
    'GET /third HTTP/1.1\r\nHost: x\r\n\r\n')
  const bodies = []
  for (let i = 0; i < 3; i++) bodies.push((await c.readResponse())?.body)
  t.same(bodies, ['got 5', 'got 3', 'got 0'])
  t.same(rig.since(m).seen.map((s) => [s.method, s.url, s.body]), [['POST', '/a', 'hello'], ['POST', '/a', 'abc'], ['GET', '/third', '']])
})

t.test('accepted edge cases reach the upstream with exactly the expected bytes', async (t) => {
  const cases: Array<[string, string, string, string]> = [
    // name, request, body the upstream must get, request line the upstream must get
    ['CL with optional whitespace', `${POST}Content-Length:   5  \r\n\r\nhello`, 'hello', 'POST /a HTTP/1.1'],
    ['chunk extensions (dropped, body kept)', `${POST}Transfer-Encoding: chunked\r\n\r\n2;ext="x;y"\r\nhe\r\n3;a=b\r\nllo\r\n0\r\n\r\n`, 'hello', 'POST /a HTTP/1.1'],
    ['chunked with a trailer', `${POST}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n`, 'hello', 'POST /a HTTP/1.1'],
    ['absolute-form naming the Host', 'GET http://x/p?q=1 HTTP/1.1\r\nHost: x\r\n\r\n', '', 'GET /p?q=1 HTTP/1.1'],
    ['absolute-form, Host differs only in case and port 80', 'GET http://EXAMPLE.test:80/p HTTP/1.1\r\nHost: example.TEST\r\n\r\n', '', 'GET /p HTTP/1.1'],
  ]
  for (const [name, bytes, body, line] of cases) {
    const m = rig.mark()
    const c = await RawClient.connect(rig.port)
    await c.write(bytes)
    const r = await c.readResponse()
    c.destroy()
    t.equal(r?.status, 200, `${name}: 200`)
    const up = rig.since(m)
    t.equal(up.seen.length, 1, `${name}: exactly one request upstream`)
    t.equal(up.seen[0]?.body, body, `${name}: the exact body`)
    t.ok(up.wire.startsWith(`${line}\r\n`), `${name}: the upstream request line is "${line}"`)
    t.notMatch(up.wire, /ext=|;a=b|X-Trailer/i, `${name}: no chunk extension or trailer leaks into the upstream stream`)
  }
})
