/**
 * The HTTP/1.1 framing defects an outside conformance run found (claylb beside nginx 1.22 and HAProxy
 * 2.6 in front of a byte-recording upstream; issue 23 items 1–5, 7, 10, 11, issue 24 #2), one row per
 * case: what the client got AND what the upstream read, byte for byte. Each row names what nginx and
 * HAProxy do. The proxies sit in front of a scripted upstream (exact answer bytes per path), over
 * HTTP/1.1 and over HTTP/2.
 */
import t, { type Test } from 'tap'
import http2, { type ClientHttp2Session, type IncomingHttpHeaders, type IncomingHttpStatusHeader } from 'node:http2'
import { startClaylb, type Claylb } from '../helpers/claylb.js'
import { Pki } from '../helpers/pki.js'
import { RawClient, problemOf, type RawResponse } from '../helpers/raw.js'
import { startScriptedUpstream, type ScriptedRequest } from '../helpers/scripted-upstream.js'
import { h2session } from '../helpers/tls-client.js'
import { buildConfig, ConfigError } from '../../src/shared/config/load.js'

const OK = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'
const FORGED = 'HTTP/1.1 200 OK\r\nSet-Cookie: injected=1\r\nContent-Length: 0\r\n\r\n'
let forty = ''
for (let i = 0; i < 40; i++) forty += `X-H${i}: ${i}\r\n`

/** the upstream's answer for each path (anything else: 200 "ok") */
const SCRIPT: Record<string, string> = {
  // a chunked answer whose trailers name a cookie and a framing header
  '/trailers': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nSet-Cookie: sid=victim-session\r\nTransfer-Encoding: chunked\r\n\r\n',
  // ... and one whose trailers declare a length (llhttp refuses the message there)
  '/trailer-length': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nSet-Cookie: sid=victim-session\r\nContent-Length: 1\r\n\r\n',
  '/status-099': `HTTP/1.1 099 Odd\r\nContent-Length: ${FORGED.length}\r\n\r\n${FORGED}`,
  '/status-600': 'HTTP/1.1 600 Odd\r\nContent-Length: 2\r\n\r\nok',
  // every kind of 1xx, the last one declaring a length it must not have, then the final answer
  '/interim': 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n' +
    'HTTP/1.1 199 Odd\r\nContent-Length: 5\r\n\r\n' + OK,
  '/204-length': 'HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nX-A: 1\r\n\r\n',
  '/204-chunked': 'HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n',
  '/304': 'HTTP/1.1 304 Not Modified\r\nContent-Length: 42\r\nETag: "e"\r\n\r\n',
  '/switch': 'HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n',
  // one answer, then a second nobody asked for
  '/extra': OK + 'HTTP/1.1 200 OK\r\nSet-Cookie: injected=2\r\nContent-Length: 0\r\n\r\n',
  '/forty': `HTTP/1.1 200 OK\r\n${forty}Content-Length: 2\r\n\r\nok`,
}

const up = await startScriptedUpstream((req) => SCRIPT[req.target] ?? OK)
const pki = new Pki()
const leaf = pki.issue(['a.test'])
// one try per request: the rows count what reached the upstream (the retry rule is tested elsewhere);
// one proxy process: the pooled-connection rows need A and B on the same pool
const base = { healthCheck: { enabled: false }, retry: { attempts: 1 }, log: { access: true }, listen: { processes: 1 } }
const [lb, lbH2, lbForward] = await Promise.all([
  startClaylb({ args: ['--upstream', up.url], config: base }),
  startClaylb({ args: ['--upstream', up.url], config: { ...base, listen: { processes: 1, http2: true, tls: { cert: leaf.cert, key: leaf.key } } } }),
  startClaylb({ args: ['--upstream', up.url], config: { ...base, limits: { underscoresInHeaders: 'forward' } } }),
])
t.teardown(async () => { await Promise.all([lb, lbH2, lbForward].map((p) => p.stop('SIGKILL'))); await up.close() })
const portOf = (p: Claylb): number => Number(new URL(p.url).port)

/** the upstream's requests from index `from` on */
const since = (from: number): ScriptedRequest[] => up.requests.slice(from)

async function client (t: Test, p: Claylb = lb): Promise<RawClient> {
  const c = await RawClient.connect(portOf(p))
  t.teardown(() => c.destroy())
  return c
}

/** `n` answers to `bytes` on one new connection; `transcript` gets every byte the client received */
async function answers (t: Test, bytes: string, n: number, p: Claylb = lb, transcript: string[] = []): Promise<Array<RawResponse | undefined>> {
  const c = await client(t, p)
  c.socket.on('data', (d: string) => transcript.push(d))
  await c.write(bytes)
  const out: Array<RawResponse | undefined> = []
  for (let i = 0; i < n; i++) out.push(await c.readResponse(15_000))
  return out
}

async function h2s (t: Test): Promise<ClientHttp2Session> {
  const s = await h2session(portOf(lbH2), 'a.test', pki.caPem)
  t.teardown(() => s.close())
  return s
}

interface H2Answer { status: number, headers: IncomingHttpHeaders, interim: number[], body: string, error?: string }

/** one HTTP/2 request; every interim (1xx) status seen before the answer is listed */
function h2req (s: ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body?: string): Promise<H2Answer> {
  return new Promise((resolve) => {
    const r = s.request({ ':path': '/', ':method': 'GET', ...headers }, { endStream: body === undefined })
    const a: H2Answer = { status: 0, headers: {}, interim: [], body: '' }
    r.setEncoding('latin1')
    r.on('headers', (h: IncomingHttpHeaders & IncomingHttpStatusHeader) => a.interim.push(Number(h[':status'])))
    r.on('response', (h) => { a.status = Number(h[':status']); a.headers = h })
    r.on('data', (d: string) => { a.body += d })
    r.on('end', () => resolve(a))
    r.on('error', (err: Error) => { a.error = err.message; resolve(a) })
    if (body !== undefined) r.end(body)
  })
}

/**
 * `path`'s answer cannot be used: the client gets a 502 problem and nothing of the answer, its
 * connection goes on in step, and the upstream connection that sent it is not reused
 */
async function assertBroken (t: Test, path: string): Promise<void> {
  const from = up.requests.length
  const c = await client(t)
  await c.write(`GET ${path} HTTP/1.1\r\nHost: a\r\n\r\n`)
  const r = await c.readResponse(15_000)
  t.equal(r?.status, 502)
  t.equal(problemOf(r!).status, 502, 'problem+json')
  t.notMatch(c.buffer + (r?.head ?? ''), /injected/, 'nothing of the answer reaches the client')
  await c.write('GET /next HTTP/1.1\r\nHost: a\r\n\r\n')
  const next = await c.readResponse(15_000)
  t.equal(next?.status, 200, 'the next answer on the connection is its own')
  t.equal(next?.body, 'ok')
  const [bad, good] = since(from)
  t.not(good?.conn, bad?.conn, 'the next request went on a new upstream connection')
}

/**
 * Client B, on a connection of its own after A's (whose request was the first since `from`): its
 * answer is its own, nothing matching `leak` in it, forwarded on A's pooled upstream connection
 * (`reused`) or on a new one
 */
async function assertNextClean (t: Test, from: number, leak: RegExp, reused: boolean): Promise<RawResponse | undefined> {
  const [b] = await answers(t, 'GET /plain HTTP/1.1\r\nHost: a\r\n\r\n', 1)
  t.equal(b?.status, 200)
  t.equal(b?.body, 'ok')
  t.notMatch(b?.head, leak, 'nothing of A\'s answer is in B\'s')
  const [ra, rb] = since(from)
  if (reused) t.equal(rb?.conn, ra?.conn, 'B was forwarded on A\'s pooled connection (the case under test)')
  else t.not(rb?.conn, ra?.conn, 'B went on a new upstream connection: A\'s was not reused')
  return b
}

const headerNames = (head: string): string[] => head.split('\r\n').slice(1).map((l) => l.slice(0, l.indexOf(':')).toLowerCase())

interface Row {
  item: string
  name: string
  /** what nginx 1.22 and HAProxy 2.6 do with the same bytes */
  others: string
  run (t: Test): Promise<void>
}

const rows: Row[] = [
  {
    item: '23.1',
    name: 'request trailers are dropped and never become the next request\'s headers or URL',
    others: 'nginx: drops request trailers (it de-chunks the body); HAProxy: forwards them as trailers, never as headers',
    async run (t) {
      const from = up.requests.length
      const c = await client(t)
      await c.write('POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nX-Trailer: v\r\n\r\n')
      t.equal((await c.readResponse())?.status, 200, 'the chunked POST is answered')
      await c.write('GET /follow HTTP/1.1\r\nHost: a\r\n\r\n')
      t.equal((await c.readResponse())?.status, 200, 'the next request too')
      const [post, get] = since(from)
      t.equal(post?.body, 'hi', 'the body arrived whole')
      t.equal(post?.trailers, '', 'the trailer is not forwarded')
      t.equal(get?.target, '/follow', 'the next request\'s URL is its own')
      t.notMatch(get?.head, /x-trailer/i, 'the trailer is not a header of the next request')
    },
  },
  {
    item: '23.1',
    name: 'a trailer Host: does not become an HTTP/1.0 request\'s Host',
    others: 'nginx: the HTTP/1.0 request gets its server name as Host; HAProxy: no Host is added',
    async run (t) {
      const from = up.requests.length
      const c = await client(t)
      await c.write('POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nHost: evil.test\r\n\r\n')
      t.equal((await c.readResponse())?.status, 200)
      await c.write('GET /ten HTTP/1.0\r\nConnection: keep-alive\r\n\r\n')
      t.equal((await c.readResponse())?.status, 200)
      const get = since(from)[1]
      t.equal(get?.target, '/ten')
      t.notMatch(get?.head, /evil/, 'neither Host nor x-forwarded-host carries the trailer')
      t.match(get?.head, new RegExp(`\r\nhost: 127\\.0\\.0\\.1:${up.port}(\r\n|$)`), 'Host is the upstream\'s authority')
    },
  },
  {
    item: '23.2',
    name: 'response trailers never reach the next client on the same pooled upstream connection (HTTP/1.1)',
    others: 'nginx: drops upstream trailers (proxy_pass without proxy_http_version trailers); HAProxy: forwards them as trailers to the same client',
    async run (t) {
      const from = up.requests.length
      const wire: string[] = []
      const [a] = await answers(t, 'GET /trailers HTTP/1.1\r\nHost: a\r\n\r\n', 1, lb, wire)
      t.equal(a?.body, 'hi', 'client A gets its body whole')
      t.match(wire.join(''), /\r\n0\r\n\r\n$/, 'A\'s answer ends with its last chunk and no trailer section')
      t.notMatch(wire.join(''), /victim/)
      const b = await assertNextClean(t, from, /victim-session/, true)
      t.same(headerNames(b?.head ?? '').filter((n) => n === 'content-length' || n === 'transfer-encoding'), ['content-length'], 'B has one framing header, its own')
    },
  },
  {
    item: '23.2',
    name: 'response trailers never reach the next client on the same pooled upstream connection (HTTP/2)',
    others: 'as over HTTP/1.1',
    async run (t) {
      const from = up.requests.length
      const a = await h2req(await h2s(t), { ':path': '/trailers' })
      t.equal(a.body, 'hi')
      const b = await h2req(await h2s(t), { ':path': '/plain' })
      const [ra, rb] = since(from)
      t.equal(rb?.conn, ra?.conn, 'B was forwarded on A\'s pooled connection')
      t.equal(b.status, 200)
      t.equal(b.body, 'ok')
      t.equal(b.headers['set-cookie'], undefined, 'A\'s trailer cookie is not in B\'s answer')
      t.equal(b.headers['content-length'], '2')
    },
  },
  {
    item: '23.2',
    name: 'response trailers declaring a Content-Length (llhttp refuses them): the answer is whole, the upstream connection closed',
    others: 'nginx: skips trailer lines, the answer whole; HAProxy: the answer whole',
    async run (t) {
      const from = up.requests.length
      const wire: string[] = []
      const [a, after] = await answers(t, 'GET /trailer-length HTTP/1.1\r\nHost: a\r\n\r\nGET /after HTTP/1.1\r\nHost: a\r\n\r\n', 2, lb, wire)
      t.equal(a?.body, 'hi', 'A gets its whole body')
      t.match(wire.join(''), /\r\n2\r\nhi\r\n0\r\n\r\n/, 'and its last chunk, no trailer section')
      t.notMatch(wire.join(''), /victim/)
      t.equal(after?.body, 'ok', 'the client connection goes on')
      const [ra, rb] = since(from)
      t.not(rb?.conn, ra?.conn, 'the upstream connection that sent it was closed')
    },
  },
  {
    item: '23.1',
    name: 'request trailers declaring a Content-Length (llhttp refuses them): the request is forwarded whole and answered, then the connection closes',
    others: 'nginx: skips trailer lines; HAProxy: forwards the request',
    async run (t) {
      const from = up.requests.length
      const c = await client(t)
      await c.write('POST /cl-trailer HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nContent-Length: 5\r\n\r\nGET /never HTTP/1.1\r\nHost: a\r\n\r\n')
      const r = await c.readResponse(15_000)
      t.equal(r?.status, 200, 'answered by the upstream')
      t.equal(r?.headers['connection'], 'close', 'as the connection\'s last answer')
      t.ok(await c.waitClosed(15_000), 'then closed: nothing after the refused trailer is read')
      const seen = since(from)
      t.same(seen.map((q) => [q.target, q.body, q.trailers]), [['/cl-trailer', 'hi', '']], 'the body whole, no trailer, nothing after it')
    },
  },
  {
    item: '23.2',
    name: 'an answer head of 32+ fields (llhttp hands it over in pieces) reaches an HTTP/2 client whole',
    others: 'nginx and HAProxy: forwarded',
    async run (t) {
      const a = await h2req(await h2s(t), { ':path': '/forty' })
      t.equal(a.error, undefined, 'the stream is not reset')
      t.equal(a.status, 200)
      t.equal(a.headers['x-h0'], '0')
      t.equal(a.headers['x-h39'], '39')
      t.equal(a.body, 'ok')
    },
  },
  {
    item: '23.3',
    name: 'a status below 100 is a 502; the forged answer in its body never reaches the client, later answers stay in step',
    others: 'nginx: 502 "upstream sent no valid HTTP/1.0 header"; HAProxy: 502',
    run: (t) => assertBroken(t, '/status-099'),
  },
  {
    item: '23.3',
    name: 'the 502 for a broken answer to a HEAD request is a head alone: no problem body for the client to read as the next answer',
    others: 'nginx and HAProxy: a 502 to HEAD has no body (RFC 9110 §9.3.2); found by the differential fuzzer',
    async run (t) {
      const c = await client(t)
      let got = ''
      c.socket.on('data', (d: string) => { got += d })
      await c.write('HEAD /status-099 HTTP/1.1\r\nHost: a\r\n\r\nGET /after HTTP/1.1\r\nHost: a\r\n\r\n')
      await c.waitFor(() => /^HTTP\/1\.1 502 [^]*?\r\n\r\n(?:HTTP\/1\.1 \d{3} [^]*?\r\n\r\n)?/.test(got) && (got.split('HTTP/1.1 ').length > 2 || c.closed), 15_000)
      t.match(got, /^HTTP\/1\.1 502 /, 'a 502')
      const rest = got.slice(got.indexOf('\r\n\r\n') + 4)
      t.ok(rest === '' || rest.startsWith('HTTP/1.1 '), `after the 502's head comes the next answer or nothing, not a body (got ${JSON.stringify(rest.slice(0, 40))})`)
    },
  },
  {
    item: '23.3',
    name: 'a status above 599 is a 502',
    others: 'nginx: 502 (it accepts 3 digits, then refuses >599); HAProxy: 502',
    run: (t) => assertBroken(t, '/status-600'),
  },
  {
    item: '23.3, 23.10',
    name: 'every 1xx (100, 102, 103, 199) goes to an HTTP/1.1 client, without a length, then the final answer',
    others: 'HAProxy: forwards every 1xx; nginx: drops every 1xx but 101 (and 103 from 1.29)',
    async run (t) {
      const [a, b, c, d, e, f] = await answers(t, 'GET /interim HTTP/1.1\r\nHost: a\r\n\r\nGET /after HTTP/1.1\r\nHost: a\r\n\r\n', 6)
      t.same([a, b, c, d, e, f].map((r) => r?.status), [100, 102, 103, 199, 200, 200], 'each interim, the final answer, then the next request\'s')
      t.equal(c?.headers['link'], '</s.css>; rel=preload', 'a 103 keeps its Link')
      t.equal(d?.headers['content-length'], undefined, 'a 1xx carries no Content-Length (RFC 9110 §8.6)')
      t.equal(e?.body, 'ok', 'the 199\'s declared length did not eat the final answer')
      t.equal(f?.body, 'ok')
    },
  },
  {
    item: '23.3',
    name: 'an HTTP/1.0 client gets no 1xx, only the final answer',
    others: 'nginx: same; HAProxy: same (RFC 9110 §15.2)',
    async run (t) {
      const [r] = await answers(t, 'GET /interim HTTP/1.0\r\nHost: a\r\n\r\n', 1)
      t.equal(r?.status, 200)
      t.equal(r?.body, 'ok')
      t.match(r?.head, /^HTTP\/1\.1 200 /, 'the first bytes are the final answer')
    },
  },
  {
    item: '23.3',
    name: 'an HTTP/2 client gets every 1xx as an interim HEADERS frame',
    others: 'nginx: drops them; HAProxy: forwards them',
    async run (t) {
      const a = await h2req(await h2s(t), { ':path': '/interim' })
      t.same(a.interim, [100, 102, 103, 199], 'every interim, in order')
      t.equal(a.status, 200)
      t.equal(a.body, 'ok')
    },
  },
  {
    item: '23.3, 23.10',
    name: 'a 204 carries neither Content-Length nor Transfer-Encoding; a 304 keeps its Content-Length',
    others: 'nginx: strips them from a 204 (and keeps a 304\'s); HAProxy: strips them from a 204',
    async run (t) {
      const [a, b, c, d] = await answers(t, 'GET /204-length HTTP/1.1\r\nHost: a\r\n\r\nGET /204-chunked HTTP/1.1\r\nHost: a\r\n\r\n' +
        'GET /304 HTTP/1.1\r\nHost: a\r\n\r\nGET /after HTTP/1.1\r\nHost: a\r\n\r\n', 4)
      for (const r of [a, b]) {
        t.equal(r?.status, 204)
        t.same(headerNames(r?.head ?? '').filter((n) => n === 'content-length' || n === 'transfer-encoding'), [], 'no length, no coding')
        t.equal(r?.headers['x-a'], '1', 'the other headers pass')
      }
      t.equal(c?.status, 304)
      t.equal(c?.headers['content-length'], '42', 'a 304 tells the length a 200 would have had')
      t.equal(d?.body, 'ok', 'and the connection stays in step')
    },
  },
  {
    item: '23.4',
    name: 'a 101 to a request that did not ask to upgrade is a 502 at once; the upstream connection is not reused',
    others: 'HAProxy: 502 at once; nginx: 502',
    run: (t) => assertBroken(t, '/switch'),
  },
  {
    item: '23.3',
    name: 'a second answer nobody asked for ends the upstream connection: it is never the next request\'s answer',
    others: 'nginx: closes the keepalive connection ("upstream sent more data than specified"); HAProxy: closes it',
    async run (t) {
      const from = up.requests.length
      const [a] = await answers(t, 'GET /extra HTTP/1.1\r\nHost: a\r\n\r\n', 1)
      t.equal(a?.body, 'ok')
      await assertNextClean(t, from, /injected/, false)
    },
  },
  {
    item: '23.5',
    name: 'Expect: 100-continue from an HTTP/1.0 client is ignored: no 100 Continue; an HTTP/1.1 client still gets one',
    others: 'nginx: ignores it for HTTP/1.0 (RFC 9110 §10.1.1); HAProxy: same',
    async run (t) {
      const [r] = await answers(t, 'POST /expect HTTP/1.0\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi', 1)
      t.equal(r?.status, 200, 'the first answer is the final one')
      t.match(r?.head, /^HTTP\/1\.1 200 /)
      const [c, d] = await answers(t, 'POST /expect HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi', 2)
      t.same([c?.status, d?.status], [100, 200], 'HTTP/1.1: 100 Continue, then the answer')
    },
  },
  {
    item: '23.7',
    name: 'header names with an underscore are dropped (HTTP/1.1)',
    others: 'nginx: dropped (underscores_in_headers off); HAProxy: forwarded',
    async run (t) {
      const from = up.requests.length
      const [r] = await answers(t, 'GET /u HTTP/1.1\r\nHost: a\r\nX_Forwarded_For: 6.6.6.6\r\nX_Custom: 1\r\nX-Kept: 2\r\n\r\n', 1)
      t.equal(r?.status, 200)
      const seen = since(from)[0]
      t.notMatch(seen?.head, /_|6\.6\.6\.6/, 'no underscored name, no spoofed address upstream')
      t.match(seen?.head, /\r\nX-Kept: 2\r\n/, 'the others pass')
    },
  },
  {
    item: '23.7',
    name: 'header names with an underscore are dropped (HTTP/2)',
    others: 'as over HTTP/1.1',
    async run (t) {
      const from = up.requests.length
      const a = await h2req(await h2s(t), { ':path': '/u2', x_forwarded_for: '6.6.6.6', 'x-kept': '2' })
      t.equal(a.status, 200)
      const seen = since(from)[0]
      t.notMatch(seen?.head, /x_forwarded_for|6\.6\.6\.6/i)
      t.match(seen?.head, /\r\nx-kept: 2\r\n/)
    },
  },
  {
    item: '23.7',
    name: 'limits.underscoresInHeaders: forward passes them',
    others: 'nginx: underscores_in_headers on',
    async run (t) {
      const from = up.requests.length
      const [r] = await answers(t, 'GET /u HTTP/1.1\r\nHost: a\r\nX_Custom: 1\r\n\r\n', 1, lbForward)
      t.equal(r?.status, 200)
      t.match(since(from)[0]?.head, /\r\nX_Custom: 1\r\n/)
    },
  },
  {
    item: '23.11',
    name: '5,000 empty headers (20 KB on the wire, 5 KB of names and values) are 431, not forwarded',
    others: 'nginx: 400/431 past large_client_header_buffers (it counts lines); HAProxy: 400 past tune.http.maxhdr 101',
    async run (t) {
      const from = up.requests.length
      const [r] = await answers(t, `GET /many HTTP/1.1\r\nHost: a\r\n${'a:\r\n'.repeat(5000)}\r\n`, 1)
      t.equal(r?.status, 431)
      t.equal(problemOf(r!).status, 431)
      t.equal(since(from).length, 0, 'nothing upstream')
    },
  },
  {
    item: '23.11',
    name: 'limits.maxHeaders (100): 100 header fields pass, 101 are 431',
    others: 'HAProxy: tune.http.maxhdr 101; nginx: no count limit',
    async run (t) {
      const from = up.requests.length
      const fields = (n: number): string => { let s = ''; for (let i = 1; i < n; i++) s += `x-n${i}: ${i}\r\n`; return s }
      const [ok] = await answers(t, `GET /hundred HTTP/1.1\r\nHost: a\r\n${fields(100)}\r\n`, 1)
      t.equal(ok?.status, 200, '100 fields (Host included) pass')
      const [no] = await answers(t, `GET /hundred-one HTTP/1.1\r\nHost: a\r\n${fields(101)}\r\n`, 1)
      t.equal(no?.status, 431, '101 fields: 431')
      t.same(since(from).map((r) => r.target), ['/hundred'], 'only the first reached the upstream')
      t.equal(headerNames(since(from)[0]?.head ?? '').filter((n) => n.startsWith('x-n')).length, 99, 'with every field')
    },
  },
  {
    item: '23.11',
    name: 'limits.maxHeaderBytes holds for the head as forwarded (name: value CRLF), not only names and values',
    others: 'nginx and HAProxy count whole lines',
    async run (t) {
      const from = up.requests.length
      // names + values + target: 16,184 bytes (under 16,384 as Node's parser counts); as lines: 16,580
      const big = 'v'.repeat(16_184 - 2 - 5 - 97 - 5)
      const [r] = await answers(t, `GET /h HTTP/1.1\r\nHost: a\r\n${'x:\r\n'.repeat(97)}X-Big: ${big}\r\n\r\n`, 1)
      t.equal(r?.status, 431)
      t.equal(since(from).length, 0, 'nothing upstream')
    },
  },
  {
    item: '23.11',
    name: 'limits.maxHeaders holds over HTTP/2 too',
    others: 'nginx: no count limit (http2_max_field_size, large_client_header_buffers); HAProxy: tune.http.maxhdr',
    async run (t) {
      const from = up.requests.length
      const h: http2.OutgoingHttpHeaders = { ':path': '/h2-many' }
      for (let i = 0; i < 150; i++) h[`x-f${i}`] = String(i)
      const a = await h2req(await h2s(t), h)
      t.equal(a.status, 431)
      t.equal(since(from).length, 0, 'nothing upstream')
    },
  },
  {
    item: '24.2',
    name: 'a standard method in another case (post, Post) is 400, never forwarded; extension methods pass as they came',
    others: 'nginx: 400 (it takes only upper-case methods); HAProxy: forwards it',
    async run (t) {
      const from = up.requests.length
      for (const m of ['post', 'Post', 'gEt']) {
        const [r] = await answers(t, `${m} /orders HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi`, 1)
        t.equal(r?.status, 400, `${m}: 400`)
        t.match(problemOf(r!).detail, /case-sensitive/)
      }
      const [foo] = await answers(t, 'FOO /ext HTTP/1.1\r\nHost: a\r\n\r\n', 1)
      t.equal(foo?.status, 200, 'FOO is forwarded')
      t.same(since(from).map((r) => r.method), ['FOO'], 'only FOO reached the upstream')
    },
  },
  {
    item: '24.2',
    name: 'extension methods pipelined behind other requests in one read are forwarded in order (after a bodiless and a chunked request)',
    others: 'nginx: forwards them; found by the differential fuzzer (it was a 400 and a close)',
    async run (t) {
      const from = up.requests.length
      const rs = await answers(t, 'GET /p1 HTTP/1.1\r\nHost: a\r\n\r\nFOO /p2 HTTP/1.1\r\nHost: a\r\n\r\n' +
        'POST /p3 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\nPOSTX /p4 HTTP/1.1\r\nHost: a\r\n\r\n' +
        'BAR /p5 HTTP/1.1\r\nHost: a\r\n\r\n', 5)
      t.same(rs.map((r) => r?.status), [200, 200, 200, 200, 200], 'five answers')
      t.same(since(from).map((r) => `${r.method} ${r.target}`), ['GET /p1', 'FOO /p2', 'POST /p3', 'POSTX /p4', 'BAR /p5'], 'each forwarded as sent, in order')
    },
  },
  {
    item: '24.2',
    name: 'a standard method in another case is 400 over HTTP/2 too',
    others: 'nginx: 400',
    async run (t) {
      const from = up.requests.length
      const a = await h2req(await h2s(t), { ':path': '/orders', ':method': 'post' }, 'hi')
      t.equal(a.status, 400)
      t.equal(since(from).length, 0, 'nothing upstream')
    },
  },
]

for (const row of rows) t.test(`${row.item}: ${row.name}`, (t) => row.run(t))

t.test('config: limits.maxHeaders and limits.underscoresInHeaders', async (t) => {
  const c = buildConfig({})
  t.equal(c.limits.maxHeaders, 100)
  t.equal(c.limits.underscoresInHeaders, 'drop')
  const problems = (raw: unknown): readonly string[] => {
    try {
      buildConfig(raw)
      return []
    } catch (err) {
      return (err as ConfigError).problems
    }
  }
  t.same(problems({ limits: { underscoresInHeaders: 'keep' } }), ['limits.underscoresInHeaders: must be "drop" or "forward"'])
  t.same(problems({ limits: { maxHeaders: 0 } }), ['limits.maxHeaders: must be a positive integer'])
})
