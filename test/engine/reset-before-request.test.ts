/**
 * The retry rule on real sockets (proxy/retry-policy's `resendable`): a request goes to another
 * upstream only when it provably never reached an application; once its bytes left, a reset or an EOF
 * leaves the outcome unknown: a GET may be made again, a POST is a 502 and is never run twice.
 *
 * This file once encoded the OLD rule: "a connection RESET before any answer byte was never read, so
 * the POST is made again". A reset only says the upstream closed with bytes unread — the upstream may
 * have read the head, acted, and died with the body unread (b), or acted and reset before answering
 * (a): the old rule ran those POSTs twice or three times. An upstream that resets a connection it
 * never read (pauseOnConnect + resetAndDestroy) is now a 502 for a POST too, unless the kernel refused
 * claylb's write (the reset arrived first): then nothing left and the POST is made again, once.
 * Every upstream here counts what it executed, by request id: what the client got AND who ran what.
 */
import t, { type Test } from 'tap'
import { request } from 'undici'
import { startBackend } from '../helpers/backend.js'
import { startClaylb } from '../helpers/claylb.js'
import { scrape, value } from '../helpers/metrics.js'
import { headerOf, listenRaw, readRequests } from '../helpers/raw-upstream.js'

type Behaviour = 'reset-unread' | 'read-then-fin' | 'run-then-reset' | 'head-then-die'

interface BadUpstream { url: string, conns: number, bytes: number, ran: string[], close: () => Promise<void> }

/**
 * An upstream that does `what` to every connection: reset it unread; read a request then FIN; run the
 * whole request (note its id) then RESET before answering; or run it on its head alone (note its id)
 * and die with the body unread (a RESET).
 */
async function badUpstream (what: Behaviour): Promise<BadUpstream> {
  const up: BadUpstream = { url: '', conns: 0, bytes: 0, ran: [], close: async () => {} }
  const id = (head: string): string => headerOf(head, 'x-request-id') ?? '?'
  const raw = await listenRaw((s) => {
    up.conns++
    if (what === 'reset-unread') {
      s.resetAndDestroy()
      return
    }
    s.on('data', (d: Buffer) => { up.bytes += d.length })
    readRequests(s, (head) => {
      if (what === 'read-then-fin') s.end()
      else {
        up.ran.push(id(head))
        s.resetAndDestroy()
      }
    }, (head) => {
      if (what !== 'head-then-die') return true
      up.ran.push(id(head))
      s.resetAndDestroy()
      return false
    })
  }, { pauseOnConnect: what === 'reset-unread' })
  up.url = raw.url
  up.close = raw.close
  return up
}

/** a good upstream that notes the id of every request it ran and answers `got <body length>` */
async function goodUpstream (): Promise<{ ran: string[], url: string, close: () => Promise<void> }> {
  const ran: string[] = []
  const b = await startBackend((req, res) => {
    let n = 0
    req.on('data', (d: Buffer) => { n += d.length })
    req.on('end', () => { ran.push(String(req.headers['x-request-id'])); res.end(`got ${n}`) })
  })
  return { ran, url: b.url, close: () => b.close() }
}

// the test client is a trusted forwarder: its x-request-id (each request's name here) is kept, not replaced
const config = { healthCheck: { enabled: false }, outlier: { enabled: false }, log: { access: false }, retry: { attempts: 3 }, trustedProxies: ['127.0.0.1/32'] }

async function rig (t: Test, what: Behaviour) {
  const bad = await badUpstream(what)
  const good = await goodUpstream()
  const lb = await startClaylb({ args: ['--upstream', bad.url, '--upstream', good.url], config })
  t.teardown(async () => { await lb.stop(); await bad.close(); await good.close() })
  return { bad, good, lb }
}

/** each id ran at most once over both upstreams, and exactly the 2xx ones ran on the good one */
function checkOnce (t: Test, bad: { ran: string[] }, good: { ran: string[] }, answered: Map<string, number>): void {
  const all = [...bad.ran, ...good.ran]
  t.equal(new Set(all).size, all.length, `no request ran twice (${bad.ran.length} on the bad upstream, ${good.ran.length} on the good one)`)
  const ok = [...answered].filter(([, s]) => s === 200).map(([id]) => id).sort()
  t.same([...good.ran].sort(), ok, 'the good upstream ran exactly the requests answered 200')
  for (const id of bad.ran) t.equal(answered.get(id), 502, `${id}, run by the failing upstream, was answered 502`)
}

async function posts (url: string, n: number, body: string): Promise<Map<string, number>> {
  const answered = new Map<string, number>()
  for (let i = 0; i < n; i++) {
    const id = `post-${i}`
    const r = await request(`${url}/orders`, { method: 'POST', body, headers: { 'content-type': 'text/plain', 'x-request-id': id } })
    await r.body.text()
    answered.set(id, r.statusCode)
  }
  return answered
}

t.test('(a) an upstream that runs the POST, then resets before answering: run once, 502; a GET is made again', async (t) => {
  const { bad, good, lb } = await rig(t, 'run-then-reset')
  const answered = await posts(lb.url, 10, 'order')
  t.ok(bad.ran.length > 0, `round-robin sent some POSTs to the resetting upstream (${bad.ran.length})`)
  checkOnce(t, bad, good, answered)
  t.equal([...answered.values()].filter((s) => s === 502).length, bad.ran.length, 'every POST it ran is a 502: the client is told')
  // a GET in the same situation: idempotent, so made again on the other upstream
  for (let i = 0; i < 6; i++) {
    const r = await request(`${lb.url}/items`, { headers: { 'x-request-id': `get-${i}` } })
    await r.body.text()
    t.equal(r.statusCode, 200, `GET ${i} answered`)
  }
  t.ok(bad.ran.some((id) => id.startsWith('get-')), 'some GETs met the resetting upstream and were made again')
  const s = await scrape(lb.admin)
  t.equal(value(s, 'claylb_retries_total', { reason: 'reset' }), bad.ran.filter((id) => id.startsWith('get-')).length, 'only the GETs were retried (reason reset)')
})

t.test('(b) an upstream that acts on the head and dies with the body unread: run at most once, 502', async (t) => {
  const { bad, good, lb } = await rig(t, 'head-then-die')
  // larger than the buffered size, so the head leaves before the whole body
  const answered = await posts(lb.url, 6, 'x'.repeat(1 << 20))
  t.ok(bad.ran.length > 0, `some POSTs met the dying upstream (${bad.ran.length})`)
  checkOnce(t, bad, good, answered)
})

t.test('an upstream that resets connections it never read: a POST is made again only when nothing left, never run twice', async (t) => {
  const { bad, good, lb } = await rig(t, 'reset-unread')
  const answered = await posts(lb.url, 10, 'order')
  t.ok(bad.conns > 0, `the resetting upstream was picked (${bad.conns} connections)`)
  t.equal(bad.bytes, 0, 'and never read a byte')
  checkOnce(t, bad, good, answered)
  const s = await scrape(lb.admin)
  t.equal(value(s, 'claylb_retries_total', { reason: 'reset' }), 0, 'no POST retried after its bytes left')
  // GETs: whatever the timing, made again and answered
  for (let i = 0; i < 6; i++) {
    const r = await request(`${lb.url}/items`, { headers: { 'x-request-id': `get-${i}` } })
    await r.body.text()
    t.equal(r.statusCode, 200, `GET ${i} answered`)
  }
})

t.test('an upstream that read the POST and closed without an answer: 502, never sent to another', async (t) => {
  const { bad, good, lb } = await rig(t, 'read-then-fin')
  let fins = 0
  for (let i = 0; i < 6; i++) {
    const before = bad.conns
    const r = await request(`${lb.url}/orders`, { method: 'POST', body: 'x'.repeat(10), headers: { 'content-type': 'text/plain', 'x-request-id': `p${i}` } })
    const text = await r.body.text()
    if (bad.conns > before) {
      fins++
      t.equal(r.statusCode, 502, 'the POST that met the FIN is a 502')
      t.match(text, /upstream-failed/)
    } else t.equal(r.statusCode, 200)
  }
  t.ok(fins > 0, `some POSTs met the closing upstream (${fins})`)
  t.equal(good.ran.length, 6 - fins, 'none of them was sent to the other upstream')
})
