/**
 * The TLS listener (listen.tls, listen.http2) against a real backend: certificates chosen by SNI
 * (exact and wildcard, the default pair otherwise), HTTP/2 and HTTP/1.1 on one port (node clients and
 * curl), x-forwarded-proto https upstream, certificates re-read on POST /reload and SIGHUP without
 * dropping open connections, a bad new certificate refused with the old one kept, and config errors
 * naming the key and the file.
 */
import t from 'tap'
import { copyFileSync, writeFileSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import https from 'node:https'
import { join } from 'node:path'
import { stringify } from 'yaml'
import { startBackend, recordBody } from '../helpers/backend.js'
import { BIN, ROOT, childEnv, startClaylb, writeConfig } from '../helpers/claylb.js'
import { Pki } from '../helpers/pki.js'
import { settle } from '../helpers/rig.js'
import { curl, h1, h2, h2session, peerSerial } from '../helpers/tls-client.js'

const pki = new Pki()
const a = pki.issue(['a.test'])
const b = pki.issue(['*.b.test'])
// the files claylb reads: copies, so a reload test can replace them
const live = { cert: join(pki.dir, 'live.pem'), key: join(pki.dir, 'live.key') }
copyFileSync(a.cert, live.cert)
copyFileSync(a.key, live.key)
const ca = pki.caPem

const backend = await startBackend(recordBody)
const lb = await startClaylb({
  args: ['--upstream', backend.url],
  config: {
    log: { access: true },
    healthCheck: { enabled: false },
    listen: { http2: true, tls: { cert: live.cert, key: live.key, sni: [{ hosts: ['*.b.test'], cert: b.cert, key: b.key }] } },
  },
})
t.teardown(async () => { await lb.stop('SIGKILL'); await backend.close() })
const port = Number(new URL(lb.url).port)

t.test('the listener says https and picks certificates by SNI: exact, wildcard, else the default pair', async (t) => {
  t.match(lb.url, /^https:\/\//, 'the "listening" line names an https URL')
  t.equal(await peerSerial(port, 'a.test'), a.serial, 'a.test: the default pair (it names a.test)')
  t.equal(await peerSerial(port, 'x.b.test'), b.serial, 'x.b.test: the *.b.test pair')
  t.equal(await peerSerial(port, 'X.B.TEST'), b.serial, 'names match case-insensitively')
  t.equal(await peerSerial(port, 'y.x.b.test'), a.serial, 'a wildcard covers one label only: y.x.b.test gets the default')
  t.equal(await peerSerial(port, 'b.test'), a.serial, '*.b.test does not cover b.test itself')
  t.equal(await peerSerial(port, ''), a.serial, 'no SNI at all: the default pair')
  // curl checks the chain and the name against the CA: a wrong certificate fails the handshake
  for (const name of ['a.test', 'x.b.test']) {
    const r = await curl(['--cacert', pki.ca, '--resolve', `${name}:${port}:127.0.0.1`, '-o', '/dev/null', '-w', '%{http_code} %{ssl_verify_result}', `https://${name}:${port}/sni`])
    t.equal(r.out, '200 0', `curl https://${name}: verified against the CA, 200 (${r.err})`)
  }
})

t.test('HTTP/2 and HTTP/1.1 on one port, both through the engine: x-forwarded-proto https, bodies intact', async (t) => {
  const m = backend.seen.length
  const one = await h1(port, { servername: 'a.test', ca, path: '/h1' })
  t.equal(one.status, 200, 'HTTP/1.1 over TLS: 200')
  const s = await h2session(port, 'a.test', ca)
  t.teardown(() => s.close())
  t.equal(s.alpnProtocol, 'h2', 'node:http2 negotiated h2 by ALPN')
  const two = await h2(s, { path: '/h2?q=1', headers: { cookie: 'a=1', 'x-custom': 'v' } })
  t.equal(two.status, 200, 'HTTP/2: 200')
  t.equal(two.body, 'got 0', 'the backend\'s answer, whole')
  t.notOk('connection' in two.headers || 'transfer-encoding' in two.headers, 'no HTTP/1.1 connection headers in the HTTP/2 answer')
  // a body without content-length goes upstream chunked; one with it, as declared
  const body = 'x'.repeat(100_000)
  t.equal((await h2(s, { path: '/post', method: 'POST', body })).body, `got ${body.length}`, 'an HTTP/2 body without a length: all of it upstream')
  t.equal((await h2(s, { path: '/post-cl', method: 'POST', body: 'hello', headers: { 'content-length': '5' } })).body, 'got 5', 'with a content-length')
  const many = await Promise.all(Array.from({ length: 30 }, (_, i) => h2(s, { path: `/many/${i}` })))
  t.same(many.map((r) => r.status), many.map(() => 200), '30 concurrent streams on one session: every one answered')
  const seen = backend.seen.slice(m)
  const h1seen = seen.find((r) => r.url === '/h1')!
  const h2seen = seen.find((r) => r.url === '/h2?q=1')!
  t.equal(h1seen.headers['x-forwarded-proto'], 'https', 'HTTP/1.1 over TLS: x-forwarded-proto https upstream')
  t.equal(h2seen.headers['x-forwarded-proto'], 'https', 'HTTP/2: x-forwarded-proto https upstream')
  t.equal(h2seen.headers.host, `a.test:${port}`, 'HTTP/2 :authority arrives as Host')
  t.equal(h2seen.headers['x-forwarded-for'], '127.0.0.1', 'x-forwarded-for is the client')
  t.equal(h2seen.headers.cookie, 'a=1', 'cookie passed')
  t.equal(h2seen.headers['x-custom'], 'v', 'headers passed')
  t.equal(seen.find((r) => r.url === '/post')!.body, body, 'the chunked upload arrived byte for byte')
  t.equal(seen.find((r) => r.url === '/post')!.headers['transfer-encoding'], 'chunked', 'framed chunked upstream')
  const logged = await lb.waitForLog((l) => l['msg'] === 'request' && l['path'] === '/h2?q=1')
  t.equal(logged['status'], 200, 'an HTTP/2 request is in the access log like any other')
  // curl both ways
  const c2 = await curl(['--http2', '--cacert', pki.ca, '--resolve', `a.test:${port}:127.0.0.1`, '-o', '/dev/null', '-w', '%{http_version} %{http_code}', `https://a.test:${port}/curl2`])
  t.equal(c2.out, '2 200', `curl --http2: HTTP/2, 200 (${c2.err})`)
  const c1 = await curl(['--http1.1', '--cacert', pki.ca, '--resolve', `a.test:${port}:127.0.0.1`, '-o', '/dev/null', '-w', '%{http_version} %{http_code}', `https://a.test:${port}/curl1`])
  t.equal(c1.out, '1.1 200', `curl --http1.1: HTTP/1.1, 200 (${c1.err})`)
})

t.test('certificates re-read on reload; open connections keep serving; a bad certificate is refused', async (t) => {
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => agent.destroy())
  const s = await h2session(port, 'a.test', ca)
  t.teardown(() => s.close())
  t.equal((await h1(port, { servername: 'a.test', ca, agent })).status, 200, 'an HTTP/1.1 keep-alive connection is open')
  t.equal((await h2(s)).status, 200, 'an HTTP/2 session is open')

  const next = pki.issue(['a.test'])
  copyFileSync(next.cert, live.cert)
  copyFileSync(next.key, live.key)
  const r = await fetch(`${lb.admin}/reload`, { method: 'POST' })
  t.equal(r.status, 200, 'POST /reload: 200')
  t.equal(await peerSerial(port, 'a.test'), next.serial, 'a new connection gets the new certificate')
  t.equal(await peerSerial(port, 'x.b.test'), b.serial, 'SNI pairs are still served')
  const again = await h1(port, { servername: 'a.test', ca, agent })
  t.equal(again.status, 200, 'the open HTTP/1.1 connection still serves')
  t.ok(again.reusedSocket, '… on the same connection')
  t.equal((await h2(s)).status, 200, 'the open HTTP/2 session still serves')

  // SIGHUP does the same
  const third = pki.issue(['a.test'])
  copyFileSync(third.cert, live.cert)
  copyFileSync(third.key, live.key)
  lb.proc.kill('SIGHUP')
  t.equal(await settle(() => peerSerial(port, 'a.test'), (v) => v === third.serial, 15_000), third.serial, 'after SIGHUP new connections get the newer certificate')

  // a broken certificate: refused, the one serving is kept
  writeFileSync(live.cert, 'not a certificate\n')
  const bad = await fetch(`${lb.admin}/reload`, { method: 'POST' })
  const problem = await bad.json() as { detail: string }
  t.equal(bad.status, 409, 'a reload with a bad certificate is refused: 409')
  t.match(problem.detail, 'listen.tls.cert', 'the refusal names the key')
  t.match(problem.detail, live.cert, '… and the file')
  t.equal(await peerSerial(port, 'a.test'), third.serial, 'the certificate serving is kept')
  t.equal((await h2(s)).status, 200, 'and the open session still serves')
  copyFileSync(third.cert, live.cert)
})

t.test('config errors name the key and the file', async (t) => {
  const check = (config: Record<string, unknown>): string => {
    const r = spawnSync(process.execPath, [BIN, 'check-config', writeConfig(config)], { cwd: ROOT, env: childEnv(), encoding: 'utf8' })
    t.equal(r.status, 1, 'check-config fails')
    return r.stdout + r.stderr
  }
  const missing = join(pki.dir, 'nope.pem')
  t.match(check({ listen: { tls: { cert: missing, key: a.key } } }), `listen.tls.cert: cannot read ${missing}: ENOENT`, 'a missing file')
  t.match(check({ listen: { tls: { cert: a.cert, key: b.key } } }), /listen\.tls: .* do not make a certificate and its key/, 'a key of another certificate')
  t.match(check({ listen: { tls: { cert: a.cert, key: a.key, sni: [{ hosts: ['c.test'], cert: a.key, key: a.key }] } } }), /listen\.tls\.sni\.0: /, 'an SNI entry with a key as its certificate')
  t.match(check({ listen: { tls: { cert: a.cert, key: a.key, sni: [{ hosts: ['bad host'], cert: a.cert, key: a.key }] } } }), 'listen.tls.sni.0.hosts.0: must be a hostname or *.domain', 'a bad host name')
  t.match(check({ listen: { http2: true } }), 'listen.http2: needs listen.tls', 'http2 without tls')
  t.match(check({ tls: { ca: missing } }), `tls.ca: cannot read ${missing}`, 'a missing upstream CA')
  const good = spawnSync(process.execPath, [BIN, 'check-config', writeConfig({ listen: { http2: true, tls: { cert: a.cert, key: a.key } }, tls: { ca: pki.ca } })], { cwd: ROOT, env: childEnv(), encoding: 'utf8' })
  t.equal(good.status, 0, `a good TLS config passes (${good.stdout}${good.stderr})`)
})

t.test('HTTP/2 problems: a body over the limit is refused on its stream, the session goes on', async (t) => {
  const lb2 = await startClaylb({
    args: ['--upstream', backend.url],
    config: { healthCheck: { enabled: false }, limits: { maxBodyBytes: 1000 }, listen: { http2: true, tls: { cert: a.cert, key: a.key } } },
  })
  t.teardown(() => lb2.stop('SIGKILL'))
  const s = await h2session(Number(new URL(lb2.url).port), 'a.test', ca)
  t.teardown(() => s.close())
  const declared = await h2(s, { path: '/too-big', method: 'POST', body: 'x'.repeat(5000), headers: { 'content-length': '5000' } })
  t.equal(declared.status, 413, 'a declared length over limits.maxBodyBytes: 413')
  t.match(declared.headers['content-type'], 'application/problem+json', 'a problem')
  const streamed = await h2(s, { path: '/too-big-streamed', method: 'POST', body: 'x'.repeat(200_000) }).catch((err: Error) => err)
  t.ok(streamed instanceof Error || streamed.status === 413, `a streamed body over the limit: 413 or the stream reset (${streamed instanceof Error ? streamed.message : streamed.status})`)
  t.equal((await h2(s, { path: '/after' })).status, 200, 'the session still serves')
  t.notOk(backend.seen.some((r) => r.url === '/too-big' && r.body !== undefined), 'the refused body never reached the upstream whole')
})

t.test('HTTP/2 streams get idempotency keys like HTTP/1.1 requests: the second POST is a replay', async (t) => {
  const lb3 = await startClaylb({
    args: ['--upstream', backend.url],
    config: { healthCheck: { enabled: false }, idempotency: { routes: [{ match: 'POST /orders' }] }, listen: { http2: true, tls: { cert: a.cert, key: a.key } } },
  })
  t.teardown(() => lb3.stop('SIGKILL'))
  const s = await h2session(Number(new URL(lb3.url).port), 'a.test', ca)
  t.teardown(() => s.close())
  const key = `k-${process.pid}-${Date.now()}`
  const before = backend.seen.filter((r) => r.url === '/orders').length
  const first = await h2(s, { path: '/orders', method: 'POST', body: '{"n":1}', headers: { 'idempotency-key': key, 'content-type': 'application/json' } })
  const second = await h2(s, { path: '/orders', method: 'POST', body: '{"n":1}', headers: { 'idempotency-key': key, 'content-type': 'application/json' } })
  t.equal(first.status, 200, 'first: executed')
  t.equal(second.status, 200, 'second: answered')
  t.equal(second.body, first.body, 'with the same body')
  t.equal(second.headers['idempotent-replayed'], 'true', 'from the record')
  t.equal(backend.seen.filter((r) => r.url === '/orders').length - before, 1, 'the upstream ran it once')
})

t.test('a reload that turns TLS off or changes the upstream TLS settings is refused, naming the keys', async (t) => {
  const base = { healthCheck: { enabled: false }, upstreams: [{ url: backend.url }], listen: { tls: { cert: a.cert, key: a.key } } }
  const file = writeConfig(base)
  const lb4 = await startClaylb({ args: ['--config', file] })
  t.teardown(() => lb4.stop('SIGKILL'))
  const reload = async (config: Record<string, unknown>): Promise<{ status: number, keys?: string[] }> => {
    writeFileSync(file, stringify(config))
    const r = await fetch(`${lb4.admin}/reload`, { method: 'POST' })
    return { status: r.status, ...(await r.json() as { keys?: string[] }) }
  }
  t.match(await reload({ ...base, listen: {} }), { status: 409, keys: ['listen.tls'] }, 'TLS turned off: refused, naming listen.tls')
  const r = await reload({ ...base, tls: { rejectUnauthorized: false } })
  t.equal(r.status, 409, 'tls.rejectUnauthorized changed: refused')
  t.same(r.keys, ['tls.rejectUnauthorized'], '… naming it')
  t.equal((await reload(base)).status, 200, 'the same config again: applied')
  t.equal(await peerSerial(Number(new URL(lb4.url).port), 'a.test'), a.serial, 'still serving TLS with its certificate')
})
