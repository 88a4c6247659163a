/**
 * redirect / rewrite / compression through the real CLI, against real sockets: HTTP/1.1 (undici) and
 * HTTP/2 (node:http2) clients; what the client decodes equals what the upstream sent (property), the
 * compressed answer's headers follow the rules, and a live reload applies changed rules.
 */
import t from 'tap'
import fc from 'fast-check'
import { writeFileSync } from 'node:fs'
import http2, { type ClientHttp2Session } from 'node:http2'
import net from 'node:net'
import { brotliDecompressSync, createBrotliDecompress, createGunzip, gunzipSync } from 'node:zlib'
import { stringify } from 'yaml'
import { Agent, request } from 'undici'
import { startBackend, type Backend } from '../helpers/backend.js'
import { startClaylb, writeConfig } from '../helpers/claylb.js'
import { req } from '../helpers/http.js'
import { Pki } from '../helpers/pki.js'
import { h2session } from '../helpers/tls-client.js'

interface Case { body: Buffer, type: string, chunked: boolean, etag?: string, vary?: string, encoding?: string, cacheControl?: string }
const cases = new Map<string, Case>()
/** what the upstream got, by case id */
const seen = new Map<string, string>()

/** answers the case named by the path's last segment, as the test set it up; /echo… answers its path */
async function upstream (): Promise<Backend> {
  return startBackend((q, s) => {
    q.resume()
    q.on('end', () => {
      const url = q.url!
      if (!url.startsWith('/c/')) {
        s.setHeader('content-type', 'text/plain')
        s.end(`path=${url}`)
        return
      }
      const id = url.slice(3)
      seen.set(id, q.headers['accept-encoding'] ?? '')
      const c = cases.get(id)!
      s.setHeader('content-type', c.type)
      if (c.etag !== undefined) s.setHeader('etag', c.etag)
      if (c.vary !== undefined) s.setHeader('vary', c.vary)
      if (c.encoding !== undefined) s.setHeader('content-encoding', c.encoding)
      if (c.cacheControl !== undefined) s.setHeader('cache-control', c.cacheControl)
      if (c.chunked) {
        // no content-length: written in pieces (node frames it chunked)
        const half = c.body.length >> 1
        s.write(c.body.subarray(0, half))
        s.end(c.body.subarray(half))
      } else s.end(c.body)
    })
  })
}

interface Answer { status: number, headers: Record<string, string | string[] | undefined>, body: Buffer }

function decode (a: Answer): Buffer {
  const enc = a.headers['content-encoding']
  if (enc === 'gzip') return gunzipSync(a.body)
  if (enc === 'br') return brotliDecompressSync(a.body)
  return a.body
}

function h2get (s: ClientHttp2Session, path: string, headers: http2.OutgoingHttpHeaders): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const r = s.request({ ':path': path, ...headers })
    const parts: Buffer[] = []
    let status = 0
    let h: Record<string, string | string[] | undefined> = {}
    r.on('response', (x) => { status = Number(x[':status']); h = x as typeof h })
    r.on('data', (d: Buffer) => parts.push(d))
    r.on('end', () => resolve({ status, headers: h, body: Buffer.concat(parts) }))
    r.on('error', reject)
  })
}

/** the oracle: q of each of br, gzip (own token, else *, else 0); the highest > 0 wins, br on a tie */
function expected (accept: string | undefined): string {
  if (accept === undefined) return ''
  const q: Record<string, number> = {}
  for (const part of accept.split(',')) {
    const [tok, ...ps] = part.split(';').map((x) => x.trim().toLowerCase())
    if (tok === '' || tok === undefined || tok in q) continue
    const qp = ps.find((p) => p.replace(/\s/g, '').startsWith('q='))
    q[tok] = qp === undefined ? 1 : Number(qp.replace(/\s/g, '').slice(2))
  }
  const of = (a: string): number => q[a] ?? q['*'] ?? 0
  const br = of('br')
  const gz = of('gzip')
  if (br <= 0 && gz <= 0) return ''
  return br >= gz ? 'br' : 'gzip'
}

const pki = new Pki()
const leaf = pki.issue(['a.test'])

t.test('compression: what the client decodes is what the upstream sent; headers follow the rules (HTTP/1.1 and HTTP/2)', async (t) => {
  const b = await upstream()
  const lb = await startClaylb({
    config: {
      listen: { http2: true, tls: { cert: leaf.cert, key: leaf.key } },
      upstreams: [{ url: b.url }],
      compression: { algorithms: ['br', 'gzip'], types: ['text/*', 'application/json'], minBytes: 64, gzipLevel: 1, brotliQuality: 1 },
      routes: [
        { match: { pathPrefix: '/old' }, redirect: { to: '/new{path}', status: 301 } },
        { match: { pathPrefix: '/c/raw' }, pool: 'default', compression: { enabled: false } },
      ],
      healthCheck: { enabled: false },
      log: { access: false },
    },
  })
  const port = Number(new URL(lb.url).port)
  const agent = new Agent({ connect: { ca: pki.caPem, servername: 'a.test' } })
  const s = await h2session(port, 'a.test', pki.caPem)
  t.teardown(async () => { s.close(); await agent.close(); await lb.stop(); await b.close() })

  const h1get = async (path: string, headers: Record<string, string>): Promise<Answer> => {
    const r = await request(`https://127.0.0.1:${port}${path}`, { dispatcher: agent, headers: { host: 'a.test', ...headers } })
    return { status: r.statusCode, headers: r.headers, body: Buffer.from(await r.body.arrayBuffer()) }
  }

  const token = fc.constantFrom('br', 'gzip', 'deflate', 'identity', '*', 'x-gzip', 'BR', 'zstd')
  const q = fc.option(fc.constantFrom('0', '0.5', '1', '0.001', '0.9'), { nil: undefined })
  const accept = fc.option(fc.array(fc.tuple(token, q), { maxLength: 4 }).map((xs) => xs.map(([tk, v]) => v === undefined ? tk : `${tk};q=${v}`).join(', ')), { nil: undefined })
  const body = fc.oneof(
    fc.string({ maxLength: 3000 }).map((x) => Buffer.from(x.repeat(3))),
    fc.uint8Array({ maxLength: 5000 }).map((x) => Buffer.from(x)),
  )
  let n = 0
  let compressed = 0
  await fc.assert(fc.asyncProperty(body, accept, fc.boolean(), fc.constantFrom('text/html; charset=utf-8', 'application/json', 'image/png'),
    fc.option(fc.constantFrom('"v1"', 'W/"v2"'), { nil: undefined }), fc.option(fc.constantFrom('origin', 'Accept-Encoding', 'cookie, origin'), { nil: undefined }),
    fc.constantFrom('h1', 'h2'), async (data, ae, chunked, type, etag, vary, proto) => {
      const id = String(n++)
      cases.set(id, { body: data, type, chunked, ...(etag !== undefined ? { etag } : {}), ...(vary !== undefined ? { vary } : {}) })
      const headers: Record<string, string> = ae === undefined ? {} : { 'accept-encoding': ae }
      const a = proto === 'h1' ? await h1get(`/c/${id}`, headers) : await h2get(s, `/c/${id}`, headers)
      cases.delete(id)
      if (a.status !== 200) throw new Error(`status ${a.status}`)
      if (!decode(a).equals(data)) throw new Error('the decoded body is not what the upstream sent')
      const eligible = type !== 'image/png' && (chunked || data.length >= 64)
      const want = eligible ? expected(ae?.replace(/x-gzip/gi, 'gzip')) : ''
      const enc = a.headers['content-encoding'] ?? ''
      if (enc !== want) throw new Error(`content-encoding ${String(enc)}, expected ${want || 'none'} (accept-encoding ${String(ae)})`)
      const v = String(a.headers['vary'] ?? '').toLowerCase()
      if (eligible && !v.split(',').map((x) => x.trim()).includes('accept-encoding')) throw new Error(`vary ${v} lacks accept-encoding`)
      if (vary !== undefined && !vary.toLowerCase().split(',').every((x) => v.includes(x.trim()))) throw new Error(`vary ${v} lost ${vary}`)
      if (enc !== '') {
        compressed++
        if (a.headers['content-length'] !== undefined) throw new Error('content-length on a compressed answer')
        if (proto === 'h1' && a.headers['transfer-encoding'] !== 'chunked') throw new Error('a compressed HTTP/1.1 answer not chunked')
        if (etag !== undefined && a.headers['etag'] !== (etag.startsWith('W/') ? etag : `W/${etag}`)) throw new Error(`etag ${String(a.headers['etag'])}`)
      } else if (etag !== undefined && a.headers['etag'] !== etag) throw new Error('etag changed on an answer sent as it came')
    }), { numRuns: 120 })
  t.ok(compressed > 10, `${compressed} of the answers were compressed`)

  // never: already encoded, no-transform, a Range request, HEAD, a route that turns it off
  const big = Buffer.from('x'.repeat(5000))
  const one = async (c: Case, headers: Record<string, string> = {}, method = 'GET', path = 'k'): Promise<Answer> => {
    cases.set(path, c)
    const r = await request(`https://127.0.0.1:${port}/c/${path}`, { dispatcher: agent, method: method as 'GET', headers: { host: 'a.test', 'accept-encoding': 'gzip, br', ...headers } })
    return { status: r.statusCode, headers: r.headers, body: Buffer.from(await r.body.arrayBuffer()) }
  }
  const enc = (a: Answer): string | undefined => a.headers['content-encoding'] as string | undefined
  const id = await one({ body: big, type: 'text/plain', chunked: false, encoding: 'identity' })
  t.same([enc(id), decode(id)], ['br', big], 'content-encoding: identity is no encoding: compressed, one content-encoding')
  const pre = await one({ body: big, type: 'text/plain', chunked: false, encoding: 'gzip' })
  t.equal(enc(pre), 'gzip', 'already encoded: as it came')
  t.same(pre.body, big, 'already encoded: the bytes untouched')
  t.equal(enc(await one({ body: big, type: 'text/plain', chunked: false, cacheControl: 'no-transform' })), undefined, 'no-transform')
  t.equal(enc(await one({ body: big, type: 'text/plain', chunked: false }, { range: 'bytes=0-10' })), undefined, 'a Range request')
  const head = await one({ body: big, type: 'text/plain', chunked: false }, {}, 'HEAD')
  t.equal(enc(head), undefined, 'HEAD untouched')
  t.equal(head.headers['vary'], undefined, 'HEAD: no vary added either')
  t.equal(enc(await one({ body: big, type: 'text/plain', chunked: false }, {}, 'GET', 'raw/x')), undefined, 'a route with enabled: false')
  t.equal(enc(await one({ body: big, type: 'text/plain', chunked: false })), 'br', 'the same answer elsewhere: compressed (equal q: the server order, br first)')

  // a redirect on the TLS listener, over HTTP/2 and HTTP/1.1: {scheme} and the query
  const before = b.count
  const r2 = await h2get(s, '/old/x?y=1', {})
  t.equal(r2.status, 301)
  t.equal(r2.headers['location'], '/new/old/x?y=1', 'HTTP/2: the query kept')
  const r1 = await h1get('/old', {})
  t.same([r1.status, r1.headers['location'], r1.headers['content-length']], [301, '/new/old', '0'], 'HTTP/1.1')
  t.equal(b.count, before, 'no upstream was asked')
})

t.test('redirect and rewrite on a plain listener, and a live reload applying changed rules', async (t) => {
  const b = await upstream()
  const base = { upstreams: [{ url: b.url }], healthCheck: { enabled: false }, log: { access: false } }
  const first = {
    ...base,
    routes: [
      { match: { host: 'old.test' }, redirect: { to: 'https://{host}{path}', status: 308 } },
      { match: { pathPrefix: '/api/' }, pool: 'default', rewrite: { pattern: '^/api/v1/(\\w+)/(\\d+)$', replace: '/{1}/show?id={2}' } },
    ],
  }
  const file = writeConfig(first)
  const lb = await startClaylb({ args: ['--config', file] })
  t.teardown(async () => { await lb.stop(); await b.close() })

  const r = await req(`${lb.url}/a/b?x=1&y=2`, { headers: { host: 'old.test:8080' } })
  t.same([r.status, r.headers['location'], r.body], [308, 'https://old.test/a/b?x=1&y=2', ''], 'HTTP → HTTPS with 308, port dropped, query kept')
  const post = await req(`${lb.url}/form`, { method: 'POST', headers: { host: 'old.test' }, body: 'a=1' })
  t.same([post.status, post.headers['location']], [308, 'https://old.test/form'], 'a POST too (308 keeps the method)')
  t.equal((await req(`${lb.url}/api/v1/users/42`)).body, 'path=/users/show?id=42', 'rewrite with groups')
  t.equal((await req(`${lb.url}/api/v1/users/42?debug=1`)).body, 'path=/users/show?id=42?debug=1', 'the client query follows the rewritten path as it came')
  t.equal((await req(`${lb.url}/api/other`)).body, 'path=/api/other', 'no match: the path as it came')
  t.equal((await req(`${lb.url}/c`)).body, 'path=/c')
  const metrics = await (await fetch(`${lb.admin}/metrics`)).text()
  t.match(metrics, /claylb_redirects_total\{status="308"\} 2/, 'redirects counted by status')
  t.match(metrics, /claylb_rewrites_total 2/, 'rewrites counted')

  writeFileSync(file, stringify({
    ...base,
    routes: [
      { match: { host: 'old.test' }, redirect: { to: 'https://new.test{path}?moved=1', status: 301 } },
      { match: { pathPrefix: '/api/' }, pool: 'default', rewrite: { pattern: '^/api', replace: '/v2' }, compression: { minBytes: 0 } },
    ],
  }))
  t.equal((await req(`${lb.admin}/reload`, { method: 'POST' })).status, 200, 'reload applied')
  const r3 = await req(`${lb.url}/a?x=1`, { headers: { host: 'old.test' } })
  t.same([r3.status, r3.headers['location']], [301, 'https://new.test/a?moved=1'], 'the new redirect: its status, its own query')
  const z = await req(`${lb.url}/api/v1/users/42`, { headers: { 'accept-encoding': 'gzip' } })
  t.equal(z.headers['content-encoding'], 'gzip', 'compression added by the reload')
  const z2 = await request(`${lb.url}/api/x`, { headers: { 'accept-encoding': 'gzip' } })
  t.equal(gunzipSync(Buffer.from(await z2.body.arrayBuffer())).toString(), 'path=/v2/x', 'the new rewrite')

  // a reload with a pattern that backtracks, and a status that is no redirect: refused whole, naming
  // both paths; the rules applied before keep serving
  writeFileSync(file, stringify({
    ...base,
    routes: [
      { match: { host: 'old.test' }, redirect: { to: 'https://{host}{path}', status: 200 } },
      { match: { pathPrefix: '/api/' }, pool: 'default', rewrite: { pattern: '^/api/(\\w+\\/?)*$', replace: '/' } },
    ],
  }))
  const bad = await req(`${lb.admin}/reload`, { method: 'POST' })
  t.equal(bad.status, 409)
  const problems = (JSON.parse(bad.body) as { problems: string[] }).problems
  t.same(problems.map((p) => p.slice(0, p.indexOf(':'))), ['routes.0.redirect.status', 'routes[1].rewrite.pattern'], `refused with the paths: ${problems.join('; ')}`)
  t.equal((await req(`${lb.url}/a`, { headers: { host: 'old.test' } })).status, 301, 'the previous redirect keeps serving')
  t.equal(lb.proc.exitCode, null)
})

let markSeen: () => void = () => {}
let firstSeen = new Promise<void>((resolve) => { markSeen = resolve })

t.test('compression under stress: a large answer to a slow reader, a client that leaves mid-answer, an upstream that breaks mid-answer, an HTTP/1.0 client', async (t) => {
  const big = Buffer.from(Array.from({ length: 200_000 }, (_, i) => `line ${i} ${(i * 7919) % 1000}\n`).join(''))
  const b = await startBackend((q, s) => {
    q.resume()
    s.setHeader('content-type', 'text/plain')
    if (q.url === '/stream') {
      // an NDJSON stream: the second line only after the client has decoded the first
      s.setHeader('content-type', 'application/json')
      s.write('{"n":1}\n')
      void firstSeen.then(() => s.end('{"n":2}\n'))
      return
    }
    if (q.url === '/break') {
      s.write(big.subarray(0, 100_000))
      // after the first part has gone, the upstream dies without ending its answer
      setImmediate(() => s.socket?.destroy())
      return
    }
    let at = 0
    const more = (): void => {
      while (at < big.length) {
        const ok = s.write(big.subarray(at, at + 16_384))
        at += 16_384
        if (!ok) { s.once('drain', more); return }
      }
      s.end()
    }
    more()
  })
  const lb = await startClaylb({ config: { upstreams: [{ url: b.url }], compression: {}, healthCheck: { enabled: false }, log: { access: false } } })
  t.teardown(async () => { markSeen(); await lb.stop(); await b.close() })
  const { port } = new URL(lb.url)

  // each chunk is flushed: a streamed answer reaches the client as it is sent, not when zlib has a block
  for (const algorithm of ['gzip', 'br'] as const) {
    const stream = await request(`${lb.url}/stream`, { headers: { 'accept-encoding': algorithm } })
    t.equal(stream.headers['content-encoding'], algorithm)
    const unzip = algorithm === 'gzip' ? createGunzip() : createBrotliDecompress()
    let text = ''
    const done = new Promise<void>((resolve) => unzip.on('end', resolve))
    unzip.on('data', (d: Buffer) => {
      text += d.toString()
      if (text.includes('{"n":1}\n')) markSeen()
    })
    for await (const chunk of stream.body) unzip.write(chunk as Buffer)
    unzip.end()
    await done
    t.equal(text, '{"n":1}\n{"n":2}\n', `${algorithm}: the first line decoded before the second was sent`)
    firstSeen = new Promise((resolve) => { markSeen = resolve })
  }

  // a slow reader: paused between reads, its bytes decode to what the upstream sent
  const slow = await request(`${lb.url}/big`, { headers: { 'accept-encoding': 'gzip' } })
  const parts: Buffer[] = []
  let reads = 0
  for await (const chunk of slow.body) {
    parts.push(chunk as Buffer)
    // yield to the event loop every few reads: claylb meets a client that is behind
    if (++reads % 4 === 0) await new Promise((resolve) => setImmediate(resolve))
  }
  t.equal(slow.headers['content-encoding'], 'gzip')
  t.ok(gunzipSync(Buffer.concat(parts)).equals(big), 'a slow reader decodes the whole answer')

  // a client that leaves after the first bytes: the upstream's answer is dropped, claylb serves on
  await new Promise<void>((resolve, reject) => {
    const c = net.connect(Number(port), '127.0.0.1', () => c.write('GET /leave HTTP/1.1\r\nhost: x\r\naccept-encoding: br\r\n\r\n'))
    c.once('data', () => { c.destroy(); resolve() })
    c.once('error', reject)
  })
  const after = await request(`${lb.url}/next`, { headers: { 'accept-encoding': 'br' } })
  t.ok(brotliDecompressSync(Buffer.from(await after.body.arrayBuffer())).equals(big), 'the next request is served whole')
  t.equal(lb.proc.exitCode, null, 'claylb is still running')

  // the upstream breaks mid-answer: the client sees the connection cut, never a clean end
  const broken = await request(`${lb.url}/break`, { headers: { 'accept-encoding': 'gzip' } })
  await t.rejects(broken.body.arrayBuffer(), 'a broken compressed answer does not end cleanly')

  // HTTP/1.0: no chunked; the answer ends with the connection
  const raw = await new Promise<Buffer>((resolve, reject) => {
    const got: Buffer[] = []
    const c = net.connect(Number(port), '127.0.0.1', () => c.write('GET /old HTTP/1.0\r\nhost: x\r\naccept-encoding: gzip\r\n\r\n'))
    c.on('data', (d: Buffer) => got.push(d))
    c.on('end', () => resolve(Buffer.concat(got)))
    c.once('error', reject)
  })
  const split = raw.indexOf('\r\n\r\n')
  const head = raw.subarray(0, split).toString('latin1').toLowerCase()
  t.match(head, /content-encoding: gzip/)
  t.notMatch(head, /transfer-encoding|content-length/, 'HTTP/1.0: neither chunked nor a length')
  t.ok(gunzipSync(raw.subarray(split + 4)).equals(big), 'HTTP/1.0: the body decodes')
})
