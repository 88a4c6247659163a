/**
 * https:// upstreams on the raw engine's pool, trusted through `tls.ca` (a private CA made at test
 * time), named with `tls.servername`, kept alive across requests, health-checked with the same CA;
 * and problems (502, 504) that never show the client an upstream address or a TLS error — the log
 * has them.
 */
import t from 'tap'
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import { readFileSync } from 'node:fs'
import { startClaylb } from '../helpers/claylb.js'
import { Pki } from '../helpers/pki.js'
import { settle } from '../helpers/rig.js'

const pki = new Pki()
// the backend's certificate names only backend.test: reached at 127.0.0.1, it verifies only with tls.servername
const leaf = pki.issue(['backend.test'])
/** the TLS connections proxied requests came on */
const sockets = new Set<unknown>()
let requests = 0
let checks = 0
const backend = https.createServer({ cert: readFileSync(leaf.cert), key: readFileSync(leaf.key) }, (req, res) => {
  if (req.url === '/healthz') {
    checks++
    res.end('ok')
    return
  }
  requests++
  sockets.add(req.socket)
  req.resume()
  req.on('end', () => {
    if (req.url === '/slow') setTimeout(() => res.end('late'), 3000)
    else res.end(`tls ${req.headers['x-forwarded-proto']}`)
  })
})
await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve))
const upstream = `https://127.0.0.1:${(backend.address() as AddressInfo).port}`
t.teardown(() => { backend.closeAllConnections(); backend.close() })

t.test('an https upstream behind a private CA: verified, kept alive, health-checked with the same CA', async (t) => {
  const lb = await startClaylb({
    args: ['--upstream', upstream],
    config: { tls: { ca: pki.ca, servername: 'backend.test' }, healthCheck: { path: '/healthz', intervalMs: 200 } },
  })
  t.teardown(() => lb.stop('SIGKILL'))
  sockets.clear()
  for (let i = 0; i < 5; i++) {
    const r = await fetch(`${lb.url}/x${i}`)
    t.equal(r.status, 200, `request ${i}: 200`)
    t.equal(await r.text(), 'tls http', 'the backend answered over TLS')
  }
  t.equal(sockets.size, 1, 'five requests, one TLS connection upstream (kept alive)')
  await settle(() => checks, (n) => n >= 2, 15_000)
  t.ok(checks >= 2, 'the active health check reaches the https upstream through the CA')
  const status = await (await fetch(`${lb.admin}/status`)).json() as { upstreams: Array<{ healthy: boolean }> }
  t.ok(status.upstreams[0]?.healthy, 'and finds it healthy')
})

t.test('problems never carry an upstream address or a TLS error; the log does', async (t) => {
  // without the CA the handshake fails (and every retry fails the same way)
  const lb = await startClaylb({
    args: ['--upstream', upstream],
    config: { healthCheck: { enabled: false }, timeouts: { requestMs: 1000 } },
  })
  t.teardown(() => lb.stop('SIGKILL'))
  const port = new URL(upstream).port
  const r = await fetch(`${lb.url}/untrusted`)
  const body = await r.text()
  t.equal(r.status, 502, 'an untrusted upstream certificate: 502')
  t.match(r.headers.get('content-type'), 'application/problem+json', 'a problem')
  t.notMatch(body, /127\.0\.0\.1|backend\.test|certificate|CERT|SIGNATURE|SSL|TLS/i, 'no address, no TLS error in the body')
  t.notMatch(body, port, 'no port in the body')
  const logged = await lb.waitForLog((l) => l['level'] === 40 && typeof l['msg'] === 'string' && (l['msg'] as string).includes('failed'))
  t.match(String(logged['msg']), /127\.0\.0\.1:\d+ failed: \S+/, `the log names the upstream and the error (${String(logged['msg'])})`)
  t.equal(logged['path'], '/untrusted', '… and the request')

  const lb2 = await startClaylb({
    args: ['--upstream', upstream],
    config: { tls: { ca: pki.ca, servername: 'backend.test' }, healthCheck: { enabled: false }, timeouts: { requestMs: 1000 } },
  })
  t.teardown(() => lb2.stop('SIGKILL'))
  const slow = await fetch(`${lb2.url}/slow`)
  const slowBody = await slow.text()
  t.equal(slow.status, 504, 'an upstream too slow: 504')
  t.notMatch(slowBody, /127\.0\.0\.1|backend\.test/, 'no address in the body')
  t.notMatch(slowBody, port, 'no port in the body')
})

t.test('a missing https upstream: 502 without its address', async (t) => {
  const lb = await startClaylb({ args: ['--upstream', 'https://127.0.0.1:9'], config: { healthCheck: { enabled: false } } })
  t.teardown(() => lb.stop('SIGKILL'))
  const r = await fetch(`${lb.url}/`)
  const body = await r.text()
  t.equal(r.status, 502, '502')
  t.notMatch(body, /127\.0\.0\.1|:9\b|ECONNREFUSED/, 'no address or error code in the body')
})

// the request count is read so an unused variable cannot hide a test that reached nothing
t.test('the backend was reached', async (t) => { t.ok(requests >= 5, `${requests} requests`) })
