/**
 * Live reload under constant load: SIGHUP moves the default pool to new upstreams and adds a route,
 * with 0 failed requests, a request in flight on an upstream that left finishing there, the kept
 * upstream keeping its Host (its health state), and a reload changing listen.host refused whole
 * with a 409 problem naming the key (the old config keeps serving).
 */
import t from 'tap'
import { writeFileSync } from 'node:fs'
import { stringify } from 'yaml'
import { startBackend, type Backend, type Handler } from '../helpers/backend.js'
import { spawn } from 'node:child_process'
import { BIN, ROOT, childEnv, startClaylb, writeConfig } from '../helpers/claylb.js'
import { freePort } from '../helpers/redis.js'
import { json, req, sleep } from '../helpers/http.js'

/** answers its name; /slow waits until released when `hold` */
function named (name: string, gate: { release: () => void, wait: Promise<void> }, hold = false): Handler {
  return (q, s) => {
    q.resume()
    if (q.url === '/slow' && hold) {
      void gate.wait.then(() => s.end(`${name} slow`))
      return
    }
    s.end(name)
  }
}

/** wait for progress; the bound is a hang guard (a failure names what never happened), never the measure */
async function until (cond: () => boolean, what: string, guardMs = 120_000): Promise<void> {
  const end = Date.now() + guardMs
  while (!cond()) {
    if (Date.now() > end) throw new Error(`hang guard: ${what} did not happen within ${guardMs} ms`)
    await sleep(5)
  }
}

function gate (): { release: () => void, wait: Promise<void> } {
  let release!: () => void
  const wait = new Promise<void>((resolve) => { release = resolve })
  return { release, wait }
}

t.test('SIGHUP under load: new upstreams and a new route, 0 failed requests, the in-flight request finishes on the old upstream', async (t) => {
  const g = gate()
  const old = await startBackend(named('old', g, true))
  const kept = await startBackend(named('kept', g))
  const fresh = await startBackend(named('new', g))
  const api = await startBackend(named('api', g))
  const base = { healthCheck: { intervalMs: 200 }, log: { access: false } }
  const file = writeConfig({ ...base, upstreams: [{ url: old.url, id: 'old' }, { url: kept.url, id: 'kept' }] })
  const lb = await startClaylb({ args: ['--config', file] })
  t.teardown(async () => { g.release(); await lb.stop(); for (const b of [old, kept, fresh, api]) await b.close() })

  // a request in flight on "old" (the one that leaves): "kept" answers /slow at once, "old" holds it
  let slow: Promise<{ status: number, body: string }> | undefined
  while (slow === undefined) {
    const before = old.count
    let answered = false
    const p = req(`${lb.url}/slow`)
    void p.then(() => { answered = true }, () => { answered = true })
    await until(() => answered || old.count > before, 'a /slow request answered or held by old')
    if (!answered) slow = p
  }

  // constant load: 4 clients in a loop, every answer recorded
  let stop = false
  const bodies = new Map<string, number>()
  const failures: string[] = []
  let served = 0
  const client = async (path: string): Promise<void> => {
    while (!stop) {
      try {
        const r = await req(`${lb.url}${path}`)
        if (r.status !== 200) failures.push(`${path}: ${r.status} ${r.body}`)
        else bodies.set(r.body, (bodies.get(r.body) ?? 0) + 1)
      } catch (err) {
        failures.push(`${path}: ${(err as Error).message}`)
      }
      served++
    }
  }
  const clients = [client('/'), client('/'), client('/api/x'), client('/api/y')]
  const more = async (n: number): Promise<void> => { const goal = served + n; await until(() => served >= goal, `${n} more requests served (${served} so far, failures: ${failures.slice(0, 3).join('; ')})`) }
  await more(200)

  // the new config: "old" leaves, "new" joins, "kept" stays; /api/ goes to a new pool
  writeFileSync(file, stringify({
    ...base,
    upstreams: [{ url: kept.url, id: 'kept' }, { url: fresh.url, id: 'new' }],
    pools: { api: { upstreams: [{ url: api.url }] } },
    routes: [{ match: { pathPrefix: '/api/' }, pool: 'api' }],
  }))
  lb.proc.kill('SIGHUP')
  await lb.waitForLog((l) => l['msg'] === 'reload applied', 20_000)
  const oldAtReload = old.count
  const keptBefore = bodies.get('kept') ?? 0
  await more(400)
  stop = true
  await Promise.all(clients)

  t.same(failures, [], '0 failed requests across the reload')
  t.equal(old.count, oldAtReload, 'the upstream that left got nothing after the reload')
  t.ok((bodies.get('new') ?? 0) > 0, 'the new upstream serves')
  t.ok((bodies.get('kept') ?? 0) > keptBefore, 'the kept upstream serves on')
  t.ok((bodies.get('api') ?? 0) > 0, 'the new route serves /api/ from its new pool')
  t.ok(api.seen.every((s) => s.url.startsWith('/api/')), 'the api pool got only /api/')

  // the request in flight on "old" finishes there
  g.release()
  const r = await slow!
  t.same([r.status, r.body], [200, 'old slow'], 'the in-flight request finished on the old upstream')
  const status = await json<{ upstreams: Array<{ id: string, pool: string }> }>(`${lb.admin}/status`)
  t.same(status.upstreams.map((u) => `${u.pool}/${u.id}`).sort(), ['api/127.0.0.1:' + api.port, 'default/kept', 'default/new'].sort(), '/status lists the new pools')
})

t.test('a reload changing listen.host is refused whole: 409 problem naming it, the old config serving', async (t) => {
  const a = await startBackend((q, s) => { q.resume(); s.end('a') })
  const b = await startBackend((q, s) => { q.resume(); s.end('b') })
  const port = await freePort()
  const adminPort = await freePort()
  const config = (host: string, upstream: string, more: Record<string, unknown> = {}): string => stringify({
    listen: { host, port }, admin: { port: adminPort }, upstreams: [{ url: upstream }], healthCheck: { enabled: false }, log: { access: false }, ...more,
  })
  const file = writeConfig({})
  writeFileSync(file, config('127.0.0.1', a.url))
  // no --host / --port flags: the file's listen.host is what a reload compares
  const proc = spawn(process.execPath, [BIN, 'start', '--config', file], { cwd: ROOT, env: childEnv(), stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  proc.stdout!.on('data', (d: Buffer) => { out += d.toString() })
  t.teardown(async () => { proc.kill('SIGTERM'); await a.close(); await b.close() })
  proc.on('exit', (code) => { out += `\nexited ${code}` })
  await until(() => out.includes('"listening"') || out.includes('\nexited'), 'claylb listening')
  t.ok(out.includes('"listening"'), `claylb started: ${out.slice(-500)}`)
  const lb = `http://127.0.0.1:${port}`
  const admin = `http://127.0.0.1:${adminPort}`
  t.equal((await req(`${lb}/`)).body, 'a')

  writeFileSync(file, config('127.0.0.2', b.url, { admin: { port: adminPort, token: 'x' } }))
  const r = await req(`${admin}/reload`, { method: 'POST' })
  t.equal(r.status, 409)
  t.equal(r.headers['content-type'], 'application/problem+json')
  const p = JSON.parse(r.body) as { type: string, keys: string[], detail: string }
  t.equal(p.type, 'urn:claylb:problem:reload-refused')
  t.same([...p.keys].sort(), ['admin.token', 'listen.host'], 'each key that cannot apply live is named')
  t.match(p.detail, /listen\.host/)
  await until(() => out.split('\n').some((l) => l.includes('reload refused') && l.includes('listen.host')), 'the "reload refused" log line')
  t.equal((await req(`${lb}/`)).body, 'a', 'the upstream change in the same file was not applied either')
  t.equal(b.count, 0)

  // the same file without the refused changes applies
  writeFileSync(file, config('127.0.0.1', b.url))
  const ok = await req(`${admin}/reload`, { method: 'POST' })
  t.equal(ok.status, 200, ok.body)
  t.equal((await req(`${lb}/`)).body, 'b', 'then the upstream change applies')
})

t.test('a reload keeps an upstream whose url stays: its state (drained here) and counters carry over, its new weight applies', async (t) => {
  const a = await startBackend((q, s) => { q.resume(); s.end('a') })
  const b = await startBackend((q, s) => { q.resume(); s.end('b') })
  const c = await startBackend((q, s) => { q.resume(); s.end('c') })
  const cfg = (wa: number, more: Array<{ url: string, id: string }> = []): Record<string, unknown> => ({
    upstreams: [{ url: a.url, id: 'a', weight: wa }, { url: b.url, id: 'b' }, ...more], healthCheck: { enabled: false }, log: { access: false },
  })
  const file = writeConfig(cfg(1))
  const lb = await startClaylb({ args: ['--config', file] })
  t.teardown(async () => { await lb.stop(); for (const x of [a, b, c]) await x.close() })
  for (let i = 0; i < 4; i++) await req(`${lb.url}/`)
  t.equal((await req(`${lb.admin}/upstreams/b/drain`, { method: 'POST' })).status, 200)
  type S = { upstreams: Array<{ id: string, state: string, requests: number, weight: number }> }
  const before = await json<S>(`${lb.admin}/status`)
  const aBefore = before.upstreams.find((u) => u.id === 'a')!.requests

  writeFileSync(file, stringify(cfg(3, [{ url: c.url, id: 'c' }])))
  t.equal((await req(`${lb.admin}/reload`, { method: 'POST' })).status, 200)
  const after = await json<S>(`${lb.admin}/status`)
  const by = (id: string) => after.upstreams.find((u) => u.id === id)!
  t.equal(by('b').state, 'draining', 'b is the same upstream: still drained')
  t.equal(by('a').requests, aBefore, 'a is the same upstream: its request count carried over')
  t.equal(by('a').weight, 3, 'its new weight applies')
  const got: Record<string, number> = {}
  for (let i = 0; i < 8; i++) { const r = await req(`${lb.url}/`); got[r.body] = (got[r.body] ?? 0) + 1 }
  t.same(got, { a: 6, c: 2 }, 'weights 3:1 over a and the new c; drained b gets nothing')
})

t.test('a reload removing a pool and its route: the path goes to the default pool, the pool leaves /status', async (t) => {
  const main = await startBackend((q, s) => { q.resume(); s.end('main') })
  const api = await startBackend((q, s) => { q.resume(); s.end('api') })
  const base = { upstreams: [{ url: main.url, id: 'main' }], healthCheck: { enabled: false }, log: { access: false } }
  const file = writeConfig({ ...base, pools: { api: { upstreams: [{ url: api.url, id: 'api' }] } }, routes: [{ match: { pathPrefix: '/api/' }, pool: 'api' }] })
  const lb = await startClaylb({ args: ['--config', file] })
  t.teardown(async () => { await lb.stop(); await main.close(); await api.close() })
  t.equal((await req(`${lb.url}/api/x`)).body, 'api')
  writeFileSync(file, stringify(base))
  t.equal((await req(`${lb.admin}/reload`, { method: 'POST' })).status, 200)
  t.equal((await req(`${lb.url}/api/x`)).body, 'main', 'no route any more: the default pool')
  const s = await json<{ upstreams: Array<{ pool: string, id: string }>, pools: Record<string, string> }>(`${lb.admin}/status`)
  t.same(s.upstreams.map((u) => `${u.pool}/${u.id}`), ['default/main'])
  t.notOk('api' in s.pools, 'the pool is gone')
  t.equal(api.count, 1)
})
