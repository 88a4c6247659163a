/**
 * PROXY protocol v1/v2 on the listener (listen.proxyProtocol): the parser (incremental, bounded, never
 * throws) and the listener: the client address behind an L4 balancer reaches x-forwarded-for over
 * plain HTTP/1.1, TLS and HTTP/2; a missing, malformed or truncated header, or one from a peer outside
 * trustedProxies, closes the connection; HAProxy's send-proxy and send-proxy-v2 as the real sender.
 */
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import http2 from 'node:http2'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import tls from 'node:tls'
import t from 'tap'
import fc from 'fast-check'
import { parseProxyHeader, V1_MAX_BYTES, V2_MAX_BYTES } from '../../src/data/policy/proxy-protocol.js'
import { startBackend } from '../helpers/backend.js'
import { startClaylb } from '../helpers/claylb.js'
import { Pki } from '../helpers/pki.js'
import { freePort } from '../helpers/redis.js'

const SIG = Buffer.from('0d0a0d0a000d0a515549540a', 'hex')

function v2 (cmd: number, fam: number, addr: Buffer, tlvs = Buffer.alloc(0)): Buffer {
  const len = Buffer.alloc(2)
  len.writeUInt16BE(addr.length + tlvs.length)
  return Buffer.concat([SIG, Buffer.from([0x20 | cmd, fam]), len, addr, tlvs])
}
function v2inet (src: string, sport: number): Buffer {
  const a = Buffer.alloc(12)
  src.split('.').forEach((o, i) => { a[i] = Number(o) })
  a.set([10, 0, 0, 1], 4)
  a.writeUInt16BE(sport, 8)
  a.writeUInt16BE(80, 10)
  return v2(1, 0x11, a)
}
function v2inet6 (groups: number[]): Buffer {
  const a = Buffer.alloc(36)
  groups.forEach((g, i) => a.writeUInt16BE(g, 2 * i))
  a.writeUInt16BE(1, 30)
  return v2(1, 0x21, a)
}

const HEADERS: Array<[string, Buffer, string | undefined]> = [
  ['v1 TCP4', Buffer.from('PROXY TCP4 203.0.113.7 10.0.0.1 51000 80\r\n'), '203.0.113.7'],
  ['v1 TCP6', Buffer.from('PROXY TCP6 2001:db8::7 2001:db8::1 51000 80\r\n'), '2001:db8::7'],
  ['v1 UNKNOWN', Buffer.from('PROXY UNKNOWN\r\n'), undefined],
  ['v2 INET', v2inet('198.51.100.20', 40000), '198.51.100.20'],
  ['v2 INET6', v2inet6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x20]), '2001:db8::20'],
  ['v2 LOCAL', v2(0, 0, Buffer.alloc(0)), undefined],
  ['v2 INET with TLVs', v2(1, 0x11, v2inet('192.0.2.1', 1).subarray(16), Buffer.from([0x01, 0x00, 0x02, 0x68, 0x32])), '192.0.2.1'],
]

t.test('parser: every header whole, and split at every byte (more, then the same result)', async (t) => {
  for (const [name, h, address] of HEADERS) {
    const whole = parseProxyHeader(Buffer.concat([h, Buffer.from('GET / HTTP/1.1\r\n')]))
    t.same(whole, { done: true, consumed: h.length, address }, name)
    for (let cut = 0; cut < h.length; cut++) {
      const part = parseProxyHeader(h.subarray(0, cut))
      if (part.done || part.error !== undefined) { t.fail(`${name}: ${cut} bytes were not "more": ${JSON.stringify(part)}`); break }
    }
  }
})

t.test('parser: malformed headers are errors; bounded; random bytes never throw', async (t) => {
  const bad = [
    'GET / HTTP/1.1\r\n', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n', 'PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n', 'PROXY TCP4 ::1 ::1 1 2\r\n',
    'PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n', 'PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n', 'PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n', 'PROXx',
  ]
  for (const b of bad) t.type(parseProxyHeader(Buffer.from(b)).done === false && (parseProxyHeader(Buffer.from(b)) as { error?: string }).error, 'string', JSON.stringify(b))
  t.match(parseProxyHeader(Buffer.from(`PROXY ${'x'.repeat(V1_MAX_BYTES)}`)), { done: false, error: /longer than 107/ })
  const long = Buffer.alloc(16); SIG.copy(long); long[12] = 0x21; long[13] = 0x11; long.writeUInt16BE(V2_MAX_BYTES, 14)
  t.match(parseProxyHeader(long), { done: false, error: /longer than/ })
  const v3 = Buffer.from(v2inet('1.2.3.4', 1)); v3[12] = 0x31
  t.match(parseProxyHeader(v3), { done: false, error: /version/ })
  const short = v2(1, 0x11, Buffer.alloc(4))
  t.match(parseProxyHeader(short), { done: false, error: /too short/ })
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), (bytes, signed) => {
    const buf = signed ? Buffer.concat([SIG, Buffer.from(bytes)]) : Buffer.from(bytes)
    const r = parseProxyHeader(buf)
    return r.done ? r.consumed <= buf.length && r.consumed <= V2_MAX_BYTES : true
  }), { numRuns: 2000 })
})

/** what the backend saw as x-forwarded-for, in the body */
async function xffBackend (): Promise<Awaited<ReturnType<typeof startBackend>>> {
  return startBackend((q, s) => { q.resume(); s.end(String(q.headers['x-forwarded-for'])) })
}

/** write `chunks` one write at a time on a fresh connection and read until the server closes */
function exchange (port: number, chunks: Buffer[], opts: { localAddress?: string } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', ...opts })
    let out = ''
    s.setEncoding('latin1')
    s.on('data', (d: string) => { out += d })
    s.on('error', (e: NodeJS.ErrnoException) => { if (e.code === 'ECONNRESET' || e.code === 'EPIPE') resolve(out); else reject(e) })
    s.on('close', () => resolve(out))
    s.on('connect', () => {
      const next = (i: number): void => {
        if (i === chunks.length) return
        s.write(chunks[i]!, () => next(i + 1))
      }
      next(0)
    })
  })
}

const GET = Buffer.from('GET / HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n')

t.test('plain listener: the header\'s client address reaches x-forwarded-for; bad, missing, truncated, untrusted: closed', async (t) => {
  const backend = await xffBackend()
  const lb = await startClaylb({ config: { listen: { processes: 1, proxyProtocol: true }, trustedProxies: ['127.0.0.1'], upstreams: [{ url: backend.url }], healthCheck: { enabled: false }, log: { access: false } } })
  t.teardown(async () => { await lb.stop(); await backend.close() })
  const port = Number(new URL(lb.url).port)
  for (const [name, h, address] of HEADERS) {
    const whole = await exchange(port, [h, GET])
    t.match(whole, new RegExp(`^HTTP/1.1 200[\\s\\S]*\\r\\n\\r\\n${(address ?? '127.0.0.1').replace(/\./g, '\\.')}$`), `${name} (separate writes)`)
    const oneWrite = await exchange(port, [Buffer.concat([h, GET])])
    t.match(oneWrite, /^HTTP\/1.1 200/, `${name} (one write with the request)`)
    const byteByByte = await exchange(port, [...h].map((b) => Buffer.from([b])).concat(GET))
    t.match(byteByByte, /^HTTP\/1.1 200/, `${name} (a byte per write)`)
  }
  const seen = backend.count
  for (const [name, bytes] of [
    ['missing (a plain request)', [GET]],
    ['malformed v1', [Buffer.from('PROXY TCP4 1.2.3.4 nope 1 2\r\n'), GET]],
    ['v1 without CRLF within 107 bytes', [Buffer.from(`PROXY TCP4 ${'1'.repeat(120)}`)]],
    ['truncated v2 then end', [v2inet('1.2.3.4', 1).subarray(0, 20)]],
    ['v2 with a bad version', [Buffer.concat([SIG, Buffer.from([0x11, 0x11, 0, 0])]), GET]],
  ] as const) {
    t.equal(await exchange(port, [...bytes]), '', `${name}: closed without an answer`)
  }
  t.equal(backend.count, seen, 'nothing was forwarded for them')
  t.equal(lb.proc.exitCode, null, 'claylb still runs')
})

t.test('a peer outside trustedProxies is closed, header or not', async (t) => {
  const backend = await xffBackend()
  const lb = await startClaylb({ config: { listen: { processes: 1, proxyProtocol: true }, trustedProxies: ['10.0.0.0/8'], upstreams: [{ url: backend.url }], healthCheck: { enabled: false }, log: { access: false } } })
  t.teardown(async () => { await lb.stop(); await backend.close() })
  const port = Number(new URL(lb.url).port)
  t.equal(await exchange(port, [HEADERS[0]![1], GET]), '', 'with a header: closed')
  t.equal(await exchange(port, [GET]), '', 'without: closed')
  t.equal(backend.count, 0)
})

t.test('config: proxyProtocol without trustedProxies is an error with its path', async (t) => {
  const e = await startClaylb({ config: { listen: { proxyProtocol: true }, upstreams: [{ url: 'http://127.0.0.1:9' }] } }).catch((err: Error) => err)
  t.match(String(e instanceof Error ? e.message : e), /listen\.proxyProtocol: only trustedProxies may send a PROXY header/)
})

t.test('TLS and HTTP/2: the PROXY header comes before the handshake', async (t) => {
  const pki = new Pki()
  const leaf = pki.issue(['a.test'])
  const backend = await xffBackend()
  const lb = await startClaylb({ config: { listen: { processes: 1, proxyProtocol: true, http2: true, tls: { cert: leaf.cert, key: leaf.key } }, trustedProxies: ['127.0.0.1'], upstreams: [{ url: backend.url }], healthCheck: { enabled: false }, log: { access: false } } })
  t.teardown(async () => { await lb.stop(); await backend.close() })
  const port = Number(new URL(lb.url).port)
  const connect = (header: Buffer, alpn: string): Promise<tls.TLSSocket> => new Promise((resolve, reject) => {
    const raw = net.connect(port, '127.0.0.1', () => {
      raw.write(header)
      const s = tls.connect({ socket: raw, servername: 'a.test', ca: pki.caPem, ALPNProtocols: [alpn] }, () => resolve(s))
      s.on('error', reject)
    })
  })
  for (const [name, h, address] of [HEADERS[0]!, HEADERS[3]!]) {
    const s = await connect(h, 'http/1.1')
    const body = await new Promise<string>((resolve) => {
      let out = ''
      s.setEncoding('latin1').on('data', (d: string) => { out += d }).on('end', () => resolve(out))
      s.write(GET)
    })
    t.match(body, new RegExp(`^HTTP/1.1 200[\\s\\S]*${address!.replace(/\./g, '\\.')}$`), `${name} over TLS`)
    const s2 = await connect(h, 'h2')
    t.equal(s2.alpnProtocol, 'h2')
    const session = http2.connect(`https://a.test:${port}`, { createConnection: () => s2 })
    const h2body = await new Promise<string>((resolve, reject) => {
      const r = session.request({ ':path': '/' })
      let out = ''
      r.setEncoding('utf8').on('data', (d: string) => { out += d }).on('end', () => resolve(out)).on('error', reject)
    })
    session.close()
    t.equal(h2body, address, `${name} over HTTP/2`)
  }
  t.equal(await exchange(port, [Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05])]), '', 'a TLS hello without the header: closed')
})

t.test('HAProxy as the sender: send-proxy and send-proxy-v2', async (t) => {
  if (spawnSync('haproxy', ['-v']).error !== undefined) throw new Error('haproxy is not on the PATH: install it (Debian/Ubuntu: apt-get install -y haproxy)')
  const backend = await xffBackend()
  // HAProxy connects from 127.0.0.1 (trusted); the client from 127.0.0.2, the address that must come through
  const lb = await startClaylb({ config: { listen: { processes: 1, proxyProtocol: true }, trustedProxies: ['127.0.0.1'], upstreams: [{ url: backend.url }], healthCheck: { enabled: false }, log: { access: false } } })
  t.teardown(async () => { await lb.stop(); await backend.close() })
  const [f1, f2] = [await freePort(), await freePort()]
  const dir = mkdtempSync(join(tmpdir(), 'claylb-haproxy-pp-'))
  const cfg = join(dir, 'haproxy.cfg')
  writeFileSync(cfg, [
    'defaults', '    mode tcp', '    timeout connect 2s', '    timeout client 30s', '    timeout server 30s',
    'frontend v1', `    bind 127.0.0.1:${f1}`, '    default_backend v1',
    'frontend v2', `    bind 127.0.0.1:${f2}`, '    default_backend v2',
    'backend v1', `    server lb ${new URL(lb.url).host} send-proxy`,
    'backend v2', `    server lb ${new URL(lb.url).host} send-proxy-v2`,
    '',
  ].join('\n'))
  const haproxy = spawn('setpriv', ['--pdeathsig', 'KILL', 'haproxy', '-db', '-f', cfg], { stdio: ['ignore', 'ignore', 'pipe'] })
  let err = ''
  haproxy.stderr.setEncoding('utf8').on('data', (d: string) => { err += d })
  t.teardown(() => { haproxy.kill('SIGKILL') })
  for (const [name, port] of [['send-proxy', f1], ['send-proxy-v2', f2]] as const) {
    // HAProxy's listener is up when a connection is accepted and answered
    let answer = ''
    for (let i = 0; i < 200 && answer === ''; i++) {
      answer = await exchange(port, [GET], { localAddress: '127.0.0.2' }).catch(() => '')
      if (answer === '' && haproxy.exitCode !== null) throw new Error(`haproxy exited: ${err}`)
      if (answer === '') await new Promise((resolve) => setTimeout(resolve, 50))
    }
    t.match(answer, /^HTTP\/1.1 200[\s\S]*\r\n\r\n127\.0\.0\.2$/, `${name}: x-forwarded-for is the client's address`)
  }
})
