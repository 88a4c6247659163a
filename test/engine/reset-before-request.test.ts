/**
 * Reset-before-request on real sockets: an upstream that RESETS a connection it never read from is
 * skipped for another whatever the method (the POST runs once, on the other upstream); one that reads
 * the request and closes with a FIN, no answer, may have acted on it: the POST is a 502, never sent
 * twice. What the client got AND what each upstream saw.
 */
import t from 'tap'
import net, { type AddressInfo } from 'node:net'
import { request } from 'undici'
import { startBackend } from '../helpers/backend.js'
import { startClaylb } from '../helpers/claylb.js'
import { scrape, value } from '../helpers/metrics.js'

/** An upstream that does `what` to every connection: reset it unread, or read a request then FIN. */
async function badUpstream (what: 'reset-unread' | 'read-then-fin'): Promise<{ url: string, conns: number, bytes: number, close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>()
  const up = { url: '', conns: 0, bytes: 0, close: async () => {} }
  const server = net.createServer({ pauseOnConnect: what === 'reset-unread' }, (s) => {
    sockets.add(s)
    up.conns++
    s.on('error', () => s.destroy()).on('close', () => sockets.delete(s))
    if (what === 'reset-unread') {
      s.resetAndDestroy()
      return
    }
    let got = ''
    s.on('data', (d: Buffer) => {
      up.bytes += d.length
      got += d.toString('latin1')
      const end = got.indexOf('\r\n\r\n')
      if (end >= 0 && got.length >= end + 4 + Number(/content-length: (\d+)/i.exec(got)?.[1] ?? 0)) s.end()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  up.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  up.close = () => new Promise<void>((resolve) => { for (const s of sockets) s.destroy(); server.close(() => resolve()) })
  return up
}

const config = { healthCheck: { enabled: false }, outlier: { enabled: false }, log: { access: false } }

t.test('a connection reset before the upstream read a byte: the POST is made again on the other upstream, once', async (t) => {
  const bad = await badUpstream('reset-unread')
  const good = await startBackend((req, res) => { let n = 0; req.on('data', (d: Buffer) => { n += d.length }); req.on('end', () => res.end(`got ${n}`)) })
  const lb = await startClaylb({ args: ['--upstream', bad.url, '--upstream', good.url], config })
  t.teardown(async () => { await lb.stop(); await bad.close(); await good.close() })
  const N = 10
  const statuses: number[] = []
  for (let i = 0; i < N; i++) {
    const r = await request(`${lb.url}/orders`, { method: 'POST', body: `order-${i}`, headers: { 'content-type': 'text/plain' } })
    t.equal(await r.body.text(), `got ${`order-${i}`.length}`)
    statuses.push(r.statusCode)
  }
  t.same(statuses, Array(N).fill(200), 'every POST answered 200')
  t.equal(good.count, N, 'the good upstream ran each POST exactly once')
  t.ok(bad.conns > 0, `the resetting upstream was picked (${bad.conns} connections)`)
  t.equal(bad.bytes, 0, 'and never read a byte')
  const s = await scrape(lb.admin)
  t.equal(value(s, 'claylb_retries_total', { reason: 'reset-before-request' }), bad.conns, 'each reset made again once, counted by reason')
})

t.test('an upstream that read the POST and closed without an answer: 502, never sent to another', async (t) => {
  const bad = await badUpstream('read-then-fin')
  const good = await startBackend()
  // round-robin sends some POSTs to the closing upstream; the good one is there to catch a wrong retry
  const lb = await startClaylb({ args: ['--upstream', bad.url, '--upstream', good.url], config })
  t.teardown(async () => { await lb.stop(); await bad.close(); await good.close() })
  let fins = 0
  for (let i = 0; i < 6; i++) {
    const before = bad.conns
    const r = await request(`${lb.url}/orders`, { method: 'POST', body: 'x'.repeat(10), headers: { 'content-type': 'text/plain' } })
    const text = await r.body.text()
    if (bad.conns > before) {
      fins++
      t.equal(r.statusCode, 502, 'the POST that met the FIN is a 502')
      t.match(text, /upstream-failed/)
    } else t.equal(r.statusCode, 200)
  }
  t.ok(fins > 0, `some POSTs met the closing upstream (${fins})`)
  t.equal(good.count, 6 - fins, 'none of them was sent to the other upstream')
})
