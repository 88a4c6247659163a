import t from 'tap'
import { startBackend, startBackends, deadPort } from '../helpers/backend.js'
import { startClaylb } from '../helpers/claylb.js'
import { json, req } from '../helpers/http.js'

t.test('a dead backend: GETs and POSTs still succeed on the others (connection refused is retried)', async (t) => {
  const live = await startBackends(['a', 'b'])
  const dead = `http://127.0.0.1:${await deadPort()}`
  const lb = await startClaylb({ args: ['--upstream', live[0]!.url, '--upstream', dead, '--upstream', live[1]!.url] })
  t.teardown(async () => { await lb.stop(); await Promise.all(live.map((b) => b.close())) })
  const statuses: number[] = []
  for (let i = 0; i < 12; i++) {
    statuses.push((await req(`${lb.url}/g`)).status)
    statuses.push((await req(`${lb.url}/p`, { method: 'POST', body: `n=${i}` })).status)
  }
  t.same(new Set(statuses), new Set([200]), 'all 24 succeeded')
  t.equal(live[0]!.count + live[1]!.count, 24, 'each request executed exactly once')
  await lb.waitForLog((l) => l['msg'] === 'request' && l['path'] === '/p' && l['attempts'] !== undefined && lb.logs.filter((x) => x['msg'] === 'request').length >= 24)
  const retried = lb.logs.filter((l) => l['msg'] === 'request' && l['attempts'] === 2)
  t.ok(retried.length >= 4, `${retried.length} requests needed a second try`)
})

t.test('a backend that accepts and never answers gives 504 within the configured timeout', async (t) => {
  const hang = await startBackend(() => { /* never answers */ })
  const lb = await startClaylb({ args: ['--upstream', hang.url], config: { timeouts: { headersMs: 800 } } })
  t.teardown(async () => { await lb.stop(); await hang.close() })
  const started = Date.now()
  const r = await req(`${lb.url}/slow`)
  const took = Date.now() - started
  t.equal(r.status, 504)
  t.equal(r.headers['content-type'], 'application/problem+json')
  t.equal(JSON.parse(r.body).status, 504)
  t.ok(took >= 700 && took < 5000, `answered after ${took} ms (timeout 800 ms)`)
  t.equal(hang.count, 1, 'a timeout is not retried')
})

t.test('the whole-request deadline (timeouts.requestMs) bounds every exchange', async (t) => {
  const drip = await startBackend((_req, res) => { res.writeHead(200); res.write('x'); /* never ends */ })
  const slowHead = await startBackend(() => {})
  t.teardown(async () => { await drip.close(); await slowHead.close() })
  const config = { timeouts: { requestMs: 600, headersMs: 30000, idleMs: 30000 } }
  const lb = await startClaylb({ args: ['--upstream', slowHead.url], config })
  t.teardown(() => lb.stop())
  let started = Date.now()
  const r = await req(`${lb.url}/slow`)
  t.equal(r.status, 504, 'no headers yet: 504 problem')
  t.ok(Date.now() - started < 4000, `after ${Date.now() - started} ms`)

  const lb2 = await startClaylb({ args: ['--upstream', drip.url], config })
  t.teardown(() => lb2.stop())
  started = Date.now()
  await t.rejects(req(`${lb2.url}/drip`), 'response started: the connection is cut, so the client sees an incomplete answer')
  t.ok(Date.now() - started < 4000, `after ${Date.now() - started} ms`)
})

t.test('a POST that reached a backend which then reset is NOT retried: one execution, 502', async (t) => {
  const resetter = await startBackend((req) => {
    req.resume()
    req.on('end', () => req.socket.destroy())
  })
  const other = await startBackend((req, res) => { req.resume(); res.end('other') })
  const lb = await startClaylb({ args: ['--upstream', resetter.url, '--upstream', other.url] })
  t.teardown(async () => { await lb.stop(); await resetter.close(); await other.close() })
  const r = await req(`${lb.url}/orders`, { method: 'POST', body: '{"amount":1}', headers: { 'content-type': 'application/json' } })
  t.equal(r.status, 502)
  t.equal(JSON.parse(r.body).type, 'urn:claylb:problem:upstream-failed')
  t.equal(resetter.count, 1, 'the backend counted exactly one execution')
  t.equal(other.count, 0, 'the POST was not replayed on another backend')
  // the same failure on a GET is retried on the other backend
  const g = await req(`${lb.url}/orders`)
  const g2 = await req(`${lb.url}/orders`)
  t.same([g.status, g2.status], [200, 200], 'GETs succeed: a reset idempotent request is retried')
})

t.test('the only upstream refuses: 502 problem after the tries', async (t) => {
  const dead = `http://127.0.0.1:${await deadPort()}`
  const lb = await startClaylb({ args: ['--upstream', dead] })
  t.teardown(async () => { await lb.stop() })
  const r = await req(`${lb.url}/x`)
  t.equal(r.status, 502)
  t.equal(r.headers['content-type'], 'application/problem+json')
})

t.test('a client that hangs up is logged as 499', async (t) => {
  const slow = await startBackend((req, res) => { req.resume(); setTimeout(() => res.end('late'), 1500) })
  const lb = await startClaylb({ args: ['--upstream', slow.url] })
  t.teardown(async () => { await lb.stop(); await slow.close() })
  const ac = new AbortController()
  const { request } = await import('undici')
  const r = request(`${lb.url}/gone`, { signal: ac.signal }).catch(() => 'aborted')
  await new Promise((resolve) => setTimeout(resolve, 300))
  ac.abort()
  t.equal(await r, 'aborted')
  const line = await lb.waitForLog((l) => l['msg'] === 'request' && l['status'] === 499)
  t.equal(line['path'], '/gone')
  const st = await json<{ upstreams: Array<{ inflight: number, healthy: boolean }> }>(`${lb.admin}/status`)
  t.equal(st.upstreams[0]!.healthy, true, 'the upstream is not blamed')
  t.equal(st.upstreams[0]!.inflight, 0, 'nothing left in flight')
})
