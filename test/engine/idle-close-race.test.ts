/**
 * (d) The idle-close race: an upstream that closes its keep-alive connections at a moment of its
 * choosing (here 0–2 ms after each answer, as a server whose keep-alive timeout is shorter than
 * claylb's does at its timeout) while claylb reuses them. A POST written on a connection as its
 * upstream closes it meets the close after its bytes left: an unknown outcome, a 502 — 11 of 100 in
 * an outside run, and every one of them here (EOF or reset) under the retry rule without the reuse
 * policy. claylb learns that this upstream closes idle connections (UpstreamPool.closesIdle) the
 * first time it sees it, and from then on sends what must not run twice on a new connection.
 * The first close is waited for (progress, not time); then the POSTs go back to back, each the moment
 * the previous one is answered, racing the close. Asserted whatever the timing: every POST answered
 * 200, each run exactly once.
 */
import t from 'tap'
import { request } from 'undici'
import { startClaylb } from '../helpers/claylb.js'
import { settle } from '../helpers/rig.js'
import { headerOf, listenRaw, readRequests } from '../helpers/raw-upstream.js'

const N = 100

/** answers every request with a keep-alive 200, then destroys the connection 0–2 ms later */
async function closingUpstream () {
  const counts = { ran: new Map<string, number>(), closed: 0, answered: 0 }
  const raw = await listenRaw((s) => {
    s.on('close', () => { counts.closed++ })
    readRequests(s, (head) => {
      const id = headerOf(head, 'x-request-id') ?? '?'
      counts.ran.set(id, (counts.ran.get(id) ?? 0) + 1)
      s.write(OK)
      const n = counts.answered++
      if (n % 3 === 0) setImmediate(() => s.destroy())
      else setTimeout(() => s.destroy(), n % 3)
    })
  })
  return Object.assign(counts, { url: raw.url, close: raw.close })
}

const OK = 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok'

async function post (url: string, id: string): Promise<string | null> {
  try {
    const r = await request(`${url}/orders`, { method: 'POST', body: `order ${id}`, headers: { 'content-type': 'text/plain', 'x-request-id': id } })
    const body = await r.body.text()
    return r.statusCode === 200 ? null : `${id}: ${r.statusCode} ${body}`
  } catch (err) {
    return `${id}: ${(err as Error).message}`
  }
}

t.test('POSTs back to back on an upstream that closes each connection right after answering: none fails, none runs twice', async (t) => {
  const up = await closingUpstream()
  const lb = await startClaylb({ args: ['--upstream', up.url], config: { healthCheck: { enabled: false }, log: { access: false }, trustedProxies: ['127.0.0.1/32'] } })
  t.teardown(async () => { await lb.stop(); await up.close() })
  const failed: string[] = []
  const first = await post(lb.url, 'post-0')
  if (first !== null) failed.push(first)
  // the upstream's first close, seen by claylb before the races begin
  await settle(() => up.closed, (n) => n >= 1, 10_000)
  for (let i = 1; i < N; i++) {
    const f = await post(lb.url, `post-${i}`)
    if (f !== null) failed.push(f)
  }
  t.same(failed, [], `no POST failed (${failed.length} of ${N})`)
  t.same([...up.ran].filter(([, n]) => n !== 1), [], 'each ran exactly once')
  t.equal(up.ran.size, N, 'every POST ran')
})

t.test('once its upstream closed an idle connection, a POST\'s new connection is closed after it: they never pile up', async (t) => {
  // closes the first connection once idle, then keeps every connection open for ever
  let conns = 0
  let requests = 0
  const up = await listenRaw((s) => {
    const first = conns++ === 0
    readRequests(s, () => {
      requests++
      s.write(OK)
      if (first) setImmediate(() => s.destroy())
    })
  })
  const sockets = up.sockets
  // a long keep-alive: only claylb's choice can close the connections during the test
  const lb = await startClaylb({ args: ['--upstream', up.url], config: { timeouts: { upstreamKeepAliveMs: 60_000 }, healthCheck: { enabled: false }, log: { access: false }, trustedProxies: ['127.0.0.1/32'] } })
  t.teardown(async () => { await lb.stop(); await up.close() })
  t.equal(await post(lb.url, 'first'), null)
  await settle(() => sockets.size, (n) => n === 0, 10_000)
  for (let i = 0; i < 30; i++) t.equal(await post(lb.url, `post-${i}`), null, `POST ${i}`)
  t.equal(requests, 31)
  t.equal(conns, 31, 'each POST had a connection of its own')
  t.equal(await settle(() => sockets.size, (n) => n <= 1, 10_000) <= 1, true, `and they were closed after it (${sockets.size} open)`)
})
