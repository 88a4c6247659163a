import t from 'tap'
import { startBackend, type Handler } from '../helpers/backend.js'
import { startClaylb } from '../helpers/claylb.js'
import { json, req } from '../helpers/http.js'
import { waitFor } from '../helpers/wait.js'

const named = (name: string): Handler => (q, s) => {
  q.resume()
  const slow = q.url?.startsWith('/slow') === true
  setTimeout(() => s.end(name), slow ? 600 : 0)
}

t.test('drain through the admin API: no new requests reach the drained upstream, in-flight ones finish', async (t) => {
  const a = await startBackend(named('a'))
  const b = await startBackend(named('b'))
  const lb = await startClaylb({ config: { upstreams: [{ url: a.url, id: 'a' }, { url: b.url, id: 'b' }], log: { access: false } } })
  t.teardown(async () => { await lb.stop(); await a.close(); await b.close() })

  const slow = req(`${lb.url}/slow`) // round-robin starts at the first upstream: a
  while (a.count === 0) await new Promise((r) => setTimeout(r, 5))
  const drained = req(`${lb.admin}/upstreams/a/drain?wait=1`, { method: 'POST' })
  // the drain has taken effect (the admin API says so), not "probably by now"
  await waitFor(async () => (await json<{ upstreams: Array<{ id: string, state: string }> }>(`${lb.admin}/status`)).upstreams.find((u) => u.id === 'a')?.state === 'draining', 'a draining in /status')
  const countAtDrain = a.count
  const bodies: string[] = []
  for (let i = 0; i < 20; i++) bodies.push((await req(`${lb.url}/x`)).body)
  t.same([...new Set(bodies)], ['b'], 'every new request went to b')
  t.equal(a.count, countAtDrain, 'a got 0 new requests')
  const s = await slow
  t.equal(s.status, 200)
  t.equal(s.body, 'a', 'the in-flight request to a finished normally')
  const d = await drained
  t.equal(d.status, 200)
  t.match(JSON.parse(d.body), { id: 'a', state: 'draining', idle: true, inflight: 0 }, 'drain?wait=1 answers once a is idle')
  const status = await json<{ upstreams: Array<{ id: string, state: string }> }>(`${lb.admin}/status`)
  t.equal(status.upstreams.find((u) => u.id === 'a')?.state, 'draining')

  const ready = await req(`${lb.admin}/upstreams/a/ready`, { method: 'POST' })
  t.equal(ready.status, 200)
  const after: string[] = []
  for (let i = 0; i < 4; i++) after.push((await req(`${lb.url}/x`)).body)
  t.ok(after.includes('a'), 'ready: a gets traffic again')
  t.equal((await req(`${lb.admin}/upstreams/nope/drain`, { method: 'POST' })).status, 404, 'unknown upstream: 404')
})

t.test('admin.token protects the mutating routes only', async (t) => {
  const a = await startBackend(named('a'))
  const lb = await startClaylb({ config: { upstreams: [{ url: a.url, id: 'a' }], admin: { token: 's3cret' } } })
  t.teardown(async () => { await lb.stop(); await a.close() })
  t.equal((await req(`${lb.admin}/upstreams/a/drain`, { method: 'POST' })).status, 401, 'no token: 401')
  t.equal((await req(`${lb.admin}/upstreams/a/drain`, { method: 'POST', headers: { authorization: 'Bearer wrong!' } })).status, 401, 'wrong token: 401')
  t.equal((await req(`${lb.admin}/upstreams/a/drain`, { method: 'POST', headers: { authorization: 's3cret' } })).status, 401, 'not a bearer: 401')
  t.equal((await req(`${lb.url}/x`)).status, 200, 'nothing was drained by the refused calls')
  const ok = await req(`${lb.admin}/upstreams/a/drain`, { method: 'POST', headers: { authorization: 'Bearer s3cret' } })
  t.equal(ok.status, 200, 'right token: 200')
  t.equal((await req(`${lb.url}/x`)).status, 503, 'drained')
  for (const p of ['/metrics', '/status', '/healthz']) t.equal((await req(`${lb.admin}${p}`)).status, 200, `GET ${p} needs no token`)
})
