/**
 * The default active check of a static upstream is a TCP connect (HAProxy's `check`): a stock
 * backend without /healthz (python3 -m http.server) stays healthy and serves; one that stops
 * listening is marked unhealthy by the same check. An HTTP check is opt-in (healthCheck.path).
 */
import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startClaylb } from '../helpers/claylb.js'
import { freePort } from '../helpers/redis.js'
import { json, req, sleep } from '../helpers/http.js'

interface Status { upstreams: Array<{ id: string, healthy: boolean, state: string }> }

t.test('a python http.server (no /healthz) stays healthy by default; a stopped one goes unhealthy', async (t) => {
  if (spawnSync('python3', ['--version']).status !== 0) throw new Error('python3 is needed for this test (apt-get install python3)')
  const dir = mkdtempSync(join(tmpdir(), 'claylb-py-'))
  writeFileSync(join(dir, 'index.html'), 'from python\n')
  const port = await freePort()
  const py = spawn('python3', ['-m', 'http.server', String(port), '--bind', '127.0.0.1', '--directory', dir], { stdio: 'ignore' })
  t.teardown(() => { py.kill('SIGKILL') })
  for (let i = 0; ; i++) {
    const up = await new Promise<boolean>((resolve) => { const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true) }); s.on('error', () => resolve(false)) })
    if (up) break
    if (i > 400) throw new Error('python3 -m http.server did not listen')
    await sleep(25)
  }
  const lb = await startClaylb({ config: { upstreams: [{ url: `http://127.0.0.1:${port}`, id: 'py' }], healthCheck: { intervalMs: 100, unhealthyThreshold: 1 }, log: { access: false } } })
  t.teardown(() => lb.stop())

  // progress, not time: many checks have run (each one a connect) and it is still healthy
  for (let i = 0; i < 10; i++) {
    t.equal((await req(`${lb.url}/index.html`)).body, 'from python\n')
    await sleep(60)
  }
  let s = await json<Status>(`${lb.admin}/status`)
  t.match(s.upstreams[0], { id: 'py', healthy: true, state: 'healthy' }, 'healthy: a TCP connect is the check')
  t.notOk(lb.logs.some((l) => l['msg'] === 'upstream unhealthy'), 'never marked unhealthy')

  py.kill('SIGKILL')
  await lb.waitForLog((l) => l['msg'] === 'upstream unhealthy' && l['upstream'] === 'py', 10_000)
  s = await json<Status>(`${lb.admin}/status`)
  t.match(s.upstreams[0], { healthy: false, state: 'unhealthy' }, 'a backend that stops listening fails the TCP check')
})

t.test('healthCheck.path opts into an HTTP check: the same backend without the path goes unhealthy', async (t) => {
  const http = await import('node:http')
  const server = http.createServer((q, s) => { q.resume(); s.statusCode = q.url === '/healthz' ? 404 : 200; s.end('x') })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  const port = (server.address() as net.AddressInfo).port
  const lb = await startClaylb({ config: { upstreams: [{ url: `http://127.0.0.1:${port}`, id: 'n' }], healthCheck: { path: '/healthz', intervalMs: 100, unhealthyThreshold: 1 }, log: { access: false } } })
  t.teardown(() => lb.stop())
  const l = await lb.waitForLog((l) => l['msg'] === 'upstream unhealthy' && l['upstream'] === 'n', 10_000)
  t.equal(l['reason'], 'status 404')
})
