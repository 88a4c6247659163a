import t from 'tap'
import { existsSync } from 'node:fs'
import { request } from 'undici'
import { join } from 'node:path'
import http from 'node:http'
import { connect, type AddressInfo } from 'node:net'
import { buildConfig } from '../../src/shared/config/load.js'
import { createApp } from '../../src/app-side/demo/app.js'
import type { WorkerContext } from '../../src/app-side/worker/context.js'
import { startClaylb } from '../helpers/claylb.js'
import { req } from '../helpers/http.js'
import { status, steadyLoad, until } from './load.js'

const FIXTURES = join(import.meta.dirname, 'fixtures')
const alive = (pid: number): boolean => { try { process.kill(pid, 0); return true } catch { return false } }

t.test('--workers 3: 300 GETs answered by 3 distinct x-worker-ids, 100 each; SIGTERM stops them', async (t) => {
  const lb = await startClaylb({ args: ['--workers', '3'], config: { log: { access: false } } })
  t.teardown(() => lb.stop())
  const r = await steadyLoad(lb.url, { total: 300 })
  t.equal(r.failed.length, 0, 'no failed request')
  t.same(Object.values(r.byWorker), [100, 100, 100], `100 each: ${JSON.stringify(r.byWorker)}`)
  const s = await status(lb.admin)
  t.equal(s.generation, 1)
  t.same(s.workers.map((w) => w.id).sort(), Object.keys(r.byWorker).sort(), '/status lists the workers that answered')
  t.ok(s.workers.every((w) => w.state === 'ready' && w.generation === 1 && w.url.startsWith('unix:') && w.requests === 100), 'ready, generation 1, on a Unix socket, 100 requests each')
  const pids = s.workers.map((w) => w.pid)
  t.equal(await lb.stop(), 0, 'claylb exits 0')
  t.same(pids.filter(alive), [], 'no worker outlives claylb')
  t.ok(lb.logs.filter((l) => l['msg'] === 'worker stopped').length === 3, 'each worker was stopped, not killed')
})

t.test('the demo app: load-test routes, faults off by default', async (t) => {
  const lb = await startClaylb({ args: ['--workers', '1'], config: { log: { access: false } } })
  t.teardown(() => lb.stop())
  const root = JSON.parse((await req(`${lb.url}/`)).body)
  t.match(root, { worker: /^w\d+$/, pid: Number })
  t.equal((await req(`${lb.url}/healthz`)).status, 200)
  t.equal((await req(`${lb.url}/status/418`)).status, 418)
  t.equal((await req(`${lb.url}/status/99`)).status, 400)
  const bytes = await req(`${lb.url}/bytes/200000`)
  t.equal(bytes.body.length, 200000)
  const delayed = await req(`${lb.url}/delay/50`)
  t.match(JSON.parse(delayed.body), { delayedMs: 50 })
  const body = 'x'.repeat(100_000)
  const echo = await req(`${lb.url}/echo`, { method: 'POST', body, headers: { 'content-type': 'text/plain' } })
  t.equal(echo.body, body, 'POST /echo streams the body back')
  t.equal(echo.headers['content-type'], 'text/plain')
  const stream = await req(`${lb.url}/stream/5`)
  t.equal(stream.headers['transfer-encoding'], 'chunked')
  t.same(stream.body.trim().split('\n').map((l) => JSON.parse(l).chunk), [0, 1, 2, 3, 4])
  t.equal((await req(`${lb.url}/hang`)).status, 404, 'no /hang unless workers.faults')
  const uncut = await req(`${lb.url}/bytes/100000`, { headers: { 'x-demo-fault': 'reset-mid-body' } })
  t.equal(uncut.body.length, 100000, 'x-demo-fault ignored unless workers.faults')
  const fails = await Promise.all(Array.from({ length: 20 }, () => req(`${lb.url}/?fail=1`)))
  t.ok(fails.every((f) => f.status === 200), '?fail ignored unless workers.faults')
  t.ok([root, bytes, echo, stream].length && (await req(`${lb.url}/nope`)).headers['x-worker-id'], 'x-worker-id on a 404 too')
})

t.test('the demo app with workers.faults: ?fail=1 fails every request, ?fail=0 none', async (t) => {
  const lb = await startClaylb({ config: { workers: { count: 1, faults: true }, retry: { attempts: 1 }, log: { access: false } } })
  t.teardown(() => lb.stop())
  const all = await Promise.all(Array.from({ length: 10 }, () => req(`${lb.url}/?fail=1`)))
  t.ok(all.every((r) => r.status === 500 && r.body.includes('injected fault')))
  const none = await Promise.all(Array.from({ length: 10 }, () => req(`${lb.url}/?fail=0`)))
  t.ok(none.every((r) => r.status === 200))
  const hang = await request(`${lb.url}/hang`, { signal: AbortSignal.timeout(300) }).then(() => 'answered', (err: Error) => err.name)
  t.equal(hang, 'TimeoutError', '/hang holds the request until the client gives up')
})

t.test('own app: a plain handler gets a fresh empty cwd, deleted when the worker goes', async (t) => {
  const lb = await startClaylb({ args: ['--workers', '2', '--app', join(FIXTURES, 'cwd-app.mjs')], config: { log: { access: false } } })
  t.teardown(() => lb.stop())
  const a = JSON.parse((await req(`${lb.url}/`)).body)
  const b = JSON.parse((await req(`${lb.url}/`)).body)
  t.not(a.cwd, b.cwd, 'each worker has its own directory')
  t.same([a.before, b.before], [[], []], 'empty at first')
  t.ok(existsSync(join(a.cwd, 'scratch.txt')), 'the app can write there')
  const s = await status(lb.admin)
  const w = s.workers[0]!
  const r = await req(`${lb.admin}/workers/${w.id}/recycle`, { method: 'POST' })
  t.equal(r.status, 202)
  await until(() => status(lb.admin), (x) => !x.workers.some((v) => v.id === w.id), 15_000, 'recycled worker gone')
  await lb.stop()
  t.notOk(existsSync(a.cwd) || existsSync(b.cwd), 'the directories are deleted when the workers exit')
})

t.test('ctx.config is the slice a worker needs: never admin.* (the token), listeners or upstreams', async (t) => {
  const token = 'admin-token-that-must-stay-in-the-proxy'
  const lb = await startClaylb({ args: ['--workers', '1', '--app', join(FIXTURES, 'config-app.mjs')], config: { admin: { token }, log: { access: false } } })
  t.teardown(() => lb.stop())
  const r = await req(`${lb.url}/`)
  t.notOk(r.body.includes(token), 'the admin token is nowhere in it')
  const c = JSON.parse(r.body) as Record<string, Record<string, unknown>>
  t.same(Object.keys(c).sort(), ['healthCheck', 'idempotency', 'log', 'redis', 'session', 'workers'], 'only the worker\'s sections')
  t.same(c['healthCheck'], { path: '/healthz' })
  t.same(Object.keys(c['workers']!).sort(), ['app', 'count', 'faults'])
  t.equal(c['workers']!['count'], 1)
  t.same(Object.keys(c['log']!), ['level'])
  t.same(Object.keys(c['idempotency']!), ['ttlSeconds'])
})

t.test('a missing app module is a clear start error', async (t) => {
  await t.rejects(startClaylb({ args: ['--workers', '1', '--app', './no/such/app.mjs'] }), /does not exist/)
})

t.test('the demo app with workers.faults on TCP: x-demo-fault: reset-mid-body sends part of the answer, then an RST', async (t) => {
  // in a worker the socket is a Unix one, which has no RST: there it is a close (the chaos test's case)
  const config = buildConfig({ workers: { faults: true } }, {}, { SESSION_SECRET: 'demo-secret-0123456789-abcdefghijklmnopq' })
  const quiet = { debug () {}, info () {}, warn () {}, error () {} }
  const ctx = { id: 'w0', slot: 1, generation: 1, config, tmpdir: '', logger: quiet, redis: () => new Promise(() => {}), session: () => new Promise(() => {}) }
  const server = http.createServer(createApp(ctx as unknown as WorkerContext))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  const port = (server.address() as AddressInfo).port
  // reading an RST may look like an end of stream; a write after it tells: refused after an RST, taken after a FIN
  const cut = (request: string): Promise<{ reset: boolean, head: string, body: string }> => new Promise((resolve) => {
    const c = connect({ port, host: '127.0.0.1', allowHalfOpen: true })
    let got = ''
    let reset = false
    const done = (): void => {
      c.destroy()
      const end = got.indexOf('\r\n\r\n')
      resolve({ reset, head: end < 0 ? '' : got.slice(0, end + 2).toLowerCase(), body: end < 0 ? '' : got.slice(end + 4) })
    }
    c.setEncoding('latin1')
    c.on('data', (d: string) => { got += d })
    c.on('error', (err: NodeJS.ErrnoException) => { reset ||= err.code === 'ECONNRESET'; done() })
    c.on('end', () => c.write('probe', (err) => { reset ||= (err as NodeJS.ErrnoException | null)?.code === 'ECONNRESET'; done() }))
    c.write(request)
  })
  const fault = 'x-demo-fault: reset-mid-body\r\n'
  const bytes = await cut(`GET /bytes/100000 HTTP/1.1\r\nHost: x\r\n${fault}\r\n`)
  t.ok(bytes.reset, '/bytes: reset')
  t.match(bytes.head, /\r\ncontent-length: 100000\r\n/, 'after a head announcing 100000 bytes')
  t.ok(bytes.body.length > 0 && bytes.body.length < 100000, `and ${bytes.body.length} of them`)
  const stream = await cut(`GET /stream/5 HTTP/1.1\r\nHost: x\r\n${fault}\r\n`)
  t.ok(stream.reset && stream.head.includes('\r\ntransfer-encoding: chunked\r\n') && stream.body.length > 0 && !stream.body.endsWith('0\r\n\r\n'), '/stream: reset inside the first chunk')
  const echo = await cut(`POST /echo HTTP/1.1\r\nHost: x\r\n${fault}content-length: 100000\r\n\r\n${'e'.repeat(1000)}`)
  t.ok(echo.reset, '/echo: reset while the body is still arriving')
  t.equal(echo.head, '', 'before any answer')
  const normal = await cut('GET /bytes/10 HTTP/1.1\r\nHost: x\r\nconnection: close\r\n\r\n')
  t.same([normal.reset, normal.body], [false, 'claylb cla'], 'without the header: the whole answer')
})
