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
import { BIN, ROOT, childEnv, writeConfig } from '../helpers/claylb.js'
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
