/**
 * Pool circuit breakers (limits.maxInflight, maxPending, maxConnectionsPerHost): past a limit an
 * immediate 503 pool-overloaded, counted by pool and limit. Paced by events: the upstream holds
 * requests until the refusals have all arrived, never by a sleep.
 */
import t from 'tap'
import type { ServerResponse } from 'node:http'
import { startBackend, type Backend } from '../helpers/backend.js'
import { writeFileSync } from 'node:fs'
import { stringify } from 'yaml'
import { startClaylb, writeConfig } from '../helpers/claylb.js'
import { req, type Reply } from '../helpers/http.js'
import { scrape, value } from '../helpers/metrics.js'

/** an upstream that answers only when told; counts the connections open at once */
async function heldBackend (): Promise<{ b: Backend, held: ServerResponse[], arrived: (n: number) => Promise<void>, release: () => void, maxConns: () => number }> {
  const held: ServerResponse[] = []
  let waiters: Array<() => void> = []
  const b = await startBackend((q, s) => {
    q.resume()
    held.push(s)
    for (const w of waiters) w()
  })
  let open = 0
  let max = 0
  b.server.on('connection', (sock) => {
    open++
    max = Math.max(max, open)
    sock.on('close', () => { open-- })
  })
  const arrived = (n: number): Promise<void> => new Promise((resolve) => {
    const check = (): void => { if (held.length >= n) { waiters = waiters.filter((w) => w !== check); resolve() } }
    waiters.push(check)
    check()
  })
  const release = (): void => { for (const s of held.splice(0)) s.end('ok') }
  return { b, held, arrived, release, maxConns: () => max }
}

function problemType (r: Reply): string {
  return (JSON.parse(r.body) as { type: string }).type
}

t.test('maxInflight: requests past it are refused at once (503 pool-overloaded), the admitted ones finish', async (t) => {
  const up = await heldBackend()
  const lb = await startClaylb({
    config: { listen: { processes: 1 }, upstreams: [{ url: up.b.url }], limits: { maxInflight: 2 }, healthCheck: { enabled: false }, log: { access: false } },
  })
  t.teardown(async () => { up.release(); await lb.stop(); await up.b.close() })
  const admitted = [req(`${lb.url}/a`), req(`${lb.url}/b`)]
  await up.arrived(2)
  const refused = await Promise.all(Array.from({ length: 5 }, () => req(`${lb.url}/c`)))
  for (const r of refused) {
    t.equal(r.status, 503)
    t.equal(problemType(r), 'urn:claylb:problem:pool-overloaded')
    t.equal(r.headers['retry-after'], '1')
  }
  t.equal(up.b.count, 2, 'the refused requests never reached the upstream')
  up.release()
  for (const r of await Promise.all(admitted)) t.equal(r.status, 200)
  const again = req(`${lb.url}/d`)
  await up.arrived(1)
  up.release()
  t.equal((await again).status, 200, 'room again once they finished')
  const m = await scrape(lb.admin)
  t.equal(value(m, 'claylb_pool_overloaded_total', { pool: 'default', limit: 'max_inflight' }), 5)
})

t.test('maxConnectionsPerHost + maxPending: one connection, one waiting, the rest refused; the waiting one is served after', async (t) => {
  const up = await heldBackend()
  const lb = await startClaylb({
    config: {
      listen: { processes: 1 },
      upstreams: [{ url: 'http://127.0.0.1:9' }],
      pools: { api: { upstreams: [{ url: up.b.url }], limits: { maxConnectionsPerHost: 1, maxPending: 1 } } },
      routes: [{ match: { pathPrefix: '/api' }, pool: 'api' }],
      healthCheck: { enabled: false },
      log: { access: false },
    },
  })
  t.teardown(async () => { up.release(); await lb.stop(); await up.b.close() })
  const first = req(`${lb.url}/api/1`)
  await up.arrived(1)
  const rest = Array.from({ length: 6 }, (_, i) => req(`${lb.url}/api/${i + 2}`))
  // exactly one of the six waits; five are refused without the first being answered
  const settled: Reply[] = []
  await new Promise<void>((resolve) => {
    for (const p of rest) void p.then((r) => { settled.push(r); if (settled.length === 5) resolve() })
  })
  t.ok(settled.every((r) => r.status === 503 && problemType(r) === 'urn:claylb:problem:pool-overloaded'), 'five refused 503 pool-overloaded')
  t.equal(up.b.count, 1, 'the upstream saw only the first')
  up.release()
  await up.arrived(1)
  up.release()
  t.equal((await first).status, 200)
  const all = await Promise.all(rest)
  t.equal(all.filter((r) => r.status === 200).length, 1, 'the waiting one was served')
  t.equal(up.b.count, 2)
  t.equal(up.maxConns(), 1, 'never more than one connection to the host')
  const m = await scrape(lb.admin)
  t.equal(value(m, 'claylb_pool_overloaded_total', { pool: 'api', limit: 'max_pending' }), 5)
})

t.test('limits apply by live reload: maxInflight 1 → 2', async (t) => {
  const up = await heldBackend()
  const base = { listen: { processes: 1 }, upstreams: [{ url: up.b.url }], healthCheck: { enabled: false }, log: { access: false } }
  const file = writeConfig({ ...base, limits: { maxInflight: 1 } })
  const lb = await startClaylb({ args: ['--config', file] })
  t.teardown(async () => { up.release(); await lb.stop(); await up.b.close() })
  const first = req(`${lb.url}/1`)
  await up.arrived(1)
  t.equal((await req(`${lb.url}/2`)).status, 503, 'maxInflight 1: the second is refused')
  up.release()
  t.equal((await first).status, 200)
  writeFileSync(file, stringify({ ...base, limits: { maxInflight: 2 } }))
  lb.proc.kill('SIGHUP')
  await lb.waitForLog((l) => l['msg'] === 'reload applied', 20_000)
  const two = [req(`${lb.url}/3`), req(`${lb.url}/4`)]
  await up.arrived(2)
  t.equal((await req(`${lb.url}/5`)).status, 503, 'maxInflight 2: the third is refused')
  up.release()
  for (const r of await Promise.all(two)) t.equal(r.status, 200, 'two in flight at once after the reload')
})

t.test('bad limits are config errors with their path', async (t) => {
  for (const [limits, msg] of [
    [{ maxInflight: 0 }, /limits\.maxInflight: must be a positive integer/],
    [{ maxInflight: -3 }, /limits\.maxInflight: must be a positive integer/],
    [{ maxPending: 4 }, /limits\.maxPending: requests wait only for a connection/],
    [{ maxConnectionsPerHost: 1.5 }, /limits\.maxConnectionsPerHost: must be a positive integer/],
  ] as const) {
    const e = await startClaylb({ config: { upstreams: [{ url: 'http://127.0.0.1:9' }], pools: { p: { upstreams: [{ url: 'http://127.0.0.1:9' }], limits } } } }).catch((err: Error) => err)
    t.match(String(e instanceof Error ? e.message : e), msg, JSON.stringify(limits))
    t.match(String(e instanceof Error ? e.message : e), /pools\.p\.limits\./)
  }
})
