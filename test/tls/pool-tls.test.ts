/**
 * A pool's own upstream TLS (`pools.NAME.tls`, merged over the top-level `tls`): two https backends,
 * each signed by its own private CA and named by its own servername, each trusted only through its
 * pool's settings — for the proxied requests and for that pool's health checks. A pool without its
 * own settings does not borrow another pool's CA. A reload that changes a kept pool's tls is refused
 * naming it; a config naming a missing CA file names the pool's key.
 */
import t from 'tap'
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import { readFileSync, writeFileSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { stringify } from 'yaml'
import { startClaylb, writeConfig, childEnv } from '../helpers/claylb.js'
import { Pki } from '../helpers/pki.js'
import { settle } from '../helpers/rig.js'

async function backend (pki: Pki, name: string): Promise<{ url: string, checks: () => number, close: () => void }> {
  const leaf = pki.issue([name])
  let checks = 0
  const server = https.createServer({ cert: readFileSync(leaf.cert), key: readFileSync(leaf.key) }, (req, res) => {
    if (req.url === '/healthz') checks++
    req.resume()
    res.end(`${name} ${req.url}`)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, checks: () => checks, close: () => { server.closeAllConnections(); server.close() } }
}

const pkiA = new Pki('claylb test CA a')
const pkiB = new Pki('claylb test CA b')
const a = await backend(pkiA, 'a.backend.test')
const b = await backend(pkiB, 'b.backend.test')
t.teardown(() => { a.close(); b.close() })

const config = {
  healthCheck: { path: '/healthz', intervalMs: 200 },
  pools: {
    a: { upstreams: [{ url: a.url }], tls: { ca: pkiA.ca, servername: 'a.backend.test' } },
    b: { upstreams: [{ url: b.url }], tls: { ca: pkiB.ca, servername: 'b.backend.test' } },
    // B's backend without B's settings: verified against Node's roots only
    plain: { upstreams: [{ url: b.url }], healthCheck: { enabled: false }, retry: { attempts: 1 } },
  },
  routes: [
    { match: { pathPrefix: '/a/' }, pool: 'a' },
    { match: { pathPrefix: '/b/' }, pool: 'b' },
    { match: { pathPrefix: '/plain/' }, pool: 'plain' },
  ],
}

t.test('each pool verifies its upstream with its own CA and servername, health checks included', async (t) => {
  const file = writeConfig(config)
  const lb = await startClaylb({ args: ['--config', file] })
  t.teardown(() => lb.stop('SIGKILL'))
  const ra = await fetch(`${lb.url}/a/1`)
  t.equal(ra.status, 200, 'pool a: 200')
  t.equal(await ra.text(), 'a.backend.test /a/1', 'answered by a over TLS')
  const rb = await fetch(`${lb.url}/b/1`)
  t.equal(rb.status, 200, 'pool b: 200')
  t.equal(await rb.text(), 'b.backend.test /b/1', 'answered by b over TLS')
  const rp = await fetch(`${lb.url}/plain/1`)
  t.equal(rp.status, 502, 'a pool without its own tls does not borrow b\'s CA: 502')
  t.notMatch(await rp.text(), /127\.0\.0\.1|certificate/i, 'the problem names neither the upstream nor the TLS error')
  await settle(() => Math.min(a.checks(), b.checks()), (n) => n >= 2, 15_000)
  const st = await (await fetch(`${lb.admin}/status`)).json() as { upstreams: Array<{ url?: string, healthy: boolean, pool?: string }> }
  for (const u of st.upstreams.filter((u) => u.url === a.url || (u.url === b.url && u.pool !== 'plain'))) t.ok(u.healthy, `${String(u.pool ?? u.url)}: its health check passes through its pool's CA`)
  t.ok(a.checks() >= 2 && b.checks() >= 2, `both backends were health-checked over TLS (${a.checks()}, ${b.checks()})`)

  // a kept pool's tls is what its connections were made with: changing it needs a restart
  writeFileSync(file, stringify({ ...config, pools: { ...config.pools, a: { ...config.pools.a, tls: { ca: pkiA.ca, servername: 'other.test' } } } }))
  const r = await fetch(`${lb.admin}/reload`, { method: 'POST' })
  t.equal(r.status, 409, 'a reload changing pools.a.tls is refused')
  t.same((await r.json() as { keys?: string[] }).keys, ['pools.a.tls'], '… naming it')
  t.equal((await fetch(`${lb.url}/a/2`)).status, 200, 'pool a still serves with its settings')
})

t.test('a pool\'s missing CA file is a config error naming the pool\'s key', async (t) => {
  const file = writeConfig({ ...config, pools: { ...config.pools, a: { ...config.pools.a, tls: { ca: '/nonexistent/ca.pem' } } } })
  const bin = new URL('../../bin/claylb', import.meta.url).pathname
  const r = spawnSync(process.execPath, [bin, 'check-config', file], { env: childEnv(), encoding: 'utf8', timeout: 90_000 })
  t.equal(r.status, 1, 'check-config: exit 1')
  t.match(r.stdout + r.stderr, /pools\.a\.tls\.ca: cannot read \/nonexistent\/ca\.pem: ENOENT/, 'the message names pools.a.tls.ca and the file')
})
