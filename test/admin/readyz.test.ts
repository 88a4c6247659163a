/**
 * /readyz means the proxy can take a request: 503 while the workers boot and the proxy port is not
 * bound yet, 200 once it is and an upstream is up, 503 again from the moment a drain (SIGTERM) starts
 * while in-flight requests finish. Paced by gate files the test writes, never by the clock.
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startBackend } from '../helpers/backend.js'
import { Agent, request } from 'undici'
import { BIN, ROOT, childEnv, startClaylb, writeConfig } from '../helpers/claylb.js'
import { json, req, sleep } from '../helpers/http.js'
import { freePort } from '../helpers/redis.js'

const accepts = (port: number): Promise<boolean> => new Promise((resolve) => {
  const s = net.connect(port, '127.0.0.1')
  s.once('connect', () => { s.destroy(); resolve(true) })
  s.once('error', () => resolve(false))
})

interface Ready { ready: boolean, listening: boolean, healthyUpstreams: number, _status: number }

t.test('/readyz: 503 until the proxy is bound, 200 while serving, 503 from the start of a drain', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'claylb-readyz-'))
  const bootGate = join(dir, 'boot')
  const slowGate = join(dir, 'slow')
  const [port, adminPort] = [await freePort(), await freePort()]
  // a static upstream beside the workers is healthy from the start: healthy upstreams alone must not
  // make claylb ready while its proxy port is still closed
  const backend = await startBackend((q, s) => {
    q.resume()
    if (q.url !== '/slow') { s.end('ok'); return }
    const poll = setInterval(() => { if (existsSync(slowGate)) { clearInterval(poll); s.end('slow done') } }, 20)
  })
  t.teardown(() => backend.close())
  const config = writeConfig({
    upstreams: [{ url: backend.url, id: 'static' }],
    workers: { count: 2, app: join(ROOT, 'test/workers/fixtures/gated-app.mjs') },
    healthCheck: { intervalMs: 100 },
    log: { access: false },
  })
  const proc = spawn(process.execPath, [BIN, 'start', '--config', config, '--host', '127.0.0.1', '--port', String(port), '--admin-port', String(adminPort)], {
    cwd: ROOT,
    env: childEnv({ CLAYLB_TEST_BOOT_GATE: bootGate, CLAYLB_TEST_SLOW_GATE: slowGate }),
    stdio: 'ignore',
  })
  const exited = new Promise<number | null>((resolve) => proc.on('exit', resolve))
  t.teardown(() => { proc.kill('SIGKILL') })
  const admin = `http://127.0.0.1:${adminPort}`

  // booting: the admin answers, the proxy port does not
  let booting: Ready | undefined
  while (booting === undefined) {
    try { booting = await json<Ready>(`${admin}/readyz`) } catch { await sleep(50) }
  }
  t.equal(booting._status, 503, 'not ready while the workers boot')
  t.same({ ready: booting.ready, listening: booting.listening }, { ready: false, listening: false })
  t.notOk(await accepts(port), 'and the proxy port indeed refuses')

  // boot: every 200 from then on must find the proxy port accepting
  writeFileSync(bootGate, '')
  let ready: Ready
  for (;;) {
    ready = await json<Ready>(`${admin}/readyz`)
    if (ready._status === 200) break
    await sleep(20)
  }
  t.ok(await accepts(port), 'ready: the proxy port accepts')
  t.same({ ready: ready.ready, listening: ready.listening }, { ready: true, listening: true })
  t.ok(ready.healthyUpstreams >= 1, `healthy upstreams: ${ready.healthyUpstreams}`)
  t.equal((await req(`http://127.0.0.1:${port}/`)).body, 'ok')

  // a request in flight, then SIGTERM: not ready any more while it finishes
  const slow = req(`http://127.0.0.1:${port}/slow`)
  await sleep(100) // the request reaches a worker; the drain below must find it in flight either way
  proc.kill('SIGTERM')
  let draining: Ready
  for (;;) {
    draining = await json<Ready>(`${admin}/readyz`)
    if (draining._status === 503) break
    await sleep(20)
  }
  t.same({ ready: draining.ready, listening: draining.listening }, { ready: false, listening: false }, 'draining: 503, not listening')
  t.equal(proc.exitCode, null, 'claylb is still draining (the slow request holds it)')
  writeFileSync(slowGate, '')
  const answer = await slow
  t.same([answer.status, answer.body], [200, 'slow done'], 'the in-flight request finished')
  t.equal(await exited, 0, 'then claylb exits 0')
})

t.test('SIGTERM: /readyz 503 at once while the port keeps accepting for shutdown.acceptGraceMs, answers closing their connection', async (t) => {
  const backend = await startBackend((q, s) => { q.resume(); q.on('end', () => s.end('ok')) })
  t.teardown(() => backend.close())
  // long enough for the checks below on a busy machine; the test then waits for it to end
  const graceMs = 12_000
  const lb = await startClaylb({ config: { upstreams: [{ url: backend.url }], shutdown: { acceptGraceMs: graceMs }, log: { access: false } } })
  t.teardown(() => lb.stop('SIGKILL'))
  const port = Number(new URL(lb.url).port)
  // a keep-alive connection opened before the drain
  const kept = new Agent({ connections: 1, keepAliveTimeout: 60_000 })
  t.teardown(() => kept.close())
  t.equal((await request(`${lb.url}/a`, { dispatcher: kept })).statusCode, 200)
  const sent = Date.now()
  lb.proc.kill('SIGTERM')
  let status = 0
  while (status !== 503) {
    status = (await json<Ready>(`${lb.admin}/readyz`))._status
    if (status !== 503) await sleep(10)
  }
  t.ok(await accepts(port), 'not ready, yet the port accepts')
  const fresh = await request(`${lb.url}/b`, { reset: true })
  await fresh.body.text()
  t.equal(fresh.statusCode, 200, 'a new connection is served during the grace')
  const again = await request(`${lb.url}/c`, { dispatcher: kept })
  await again.body.text()
  t.same([again.statusCode, again.headers['connection']], [200, 'close'], 'an open connection gets its answer with connection: close')
  t.ok(Date.now() - sent < graceMs, 'the checks above ran within the grace')
  t.equal(await lb.exited, 0, 'then the port closes and claylb exits 0')
  t.ok(Date.now() - sent >= graceMs, 'not before the grace ended')
  t.notOk(await accepts(port), 'the port refuses after the exit')
})
