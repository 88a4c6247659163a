/**
 * trustedProxies: from a trusted peer x-forwarded-for / -proto / -host are kept (x-forwarded-for gets
 * the peer appended); from any other peer they are the proxy's own (x-forwarded-for: the peer alone). The decision is the peer's
 * address, so the same client is trusted under one config and not under the other.
 */
import t from 'tap'
import { startBackend } from '../helpers/backend.js'
import { startClaylb } from '../helpers/claylb.js'
import { req } from '../helpers/http.js'

const spoof = { 'x-forwarded-for': '203.0.113.7', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'public.example' }

for (const [name, trustedProxies, trusted] of [
  ['a trusted CIDR (v4)', ['127.0.0.0/8'], true],
  ['a trusted address among others (v6 and v4)', ['::1', 'fd00::/8', '127.0.0.1'], true],
  ['an untrusted peer', ['10.0.0.0/8', '::ffff:192.168.0.0/112'], false],
  ['no trustedProxies', [], false],
] as const) {
  t.test(name, async (t) => {
    const backend = await startBackend((q, s) => { q.resume(); s.end('ok') })
    const lb = await startClaylb({ config: { upstreams: [{ url: backend.url }], trustedProxies, healthCheck: { enabled: false }, log: { access: false } } })
    t.teardown(async () => { await lb.stop(); await backend.close() })
    await req(`${lb.url}/`, { headers: { ...spoof, host: 'internal.test' } })
    const h = backend.seen.at(-1)!.headers
    if (trusted) {
      t.equal(h['x-forwarded-for'], '203.0.113.7, 127.0.0.1', 'x-forwarded-for kept from a trusted forwarder, the peer appended')
      t.equal(h['x-forwarded-proto'], 'https', 'proto kept from a trusted forwarder')
      t.equal(h['x-forwarded-host'], 'public.example', 'host kept from a trusted forwarder')
    } else {
      t.equal(h['x-forwarded-for'], '127.0.0.1', 'x-forwarded-for replaced by the peer: the client is not a trusted forwarder')
      t.equal(h['x-forwarded-proto'], 'http', 'proto replaced: the client is not a trusted forwarder')
      t.equal(h['x-forwarded-host'], 'internal.test', 'host replaced by the Host the proxy got')
    }
  })
}

t.test('a trusted forwarder that sends none: the proxy\'s own values', async (t) => {
  const backend = await startBackend((q, s) => { q.resume(); s.end('ok') })
  const lb = await startClaylb({ config: { upstreams: [{ url: backend.url }], trustedProxies: ['127.0.0.1/32'], healthCheck: { enabled: false }, log: { access: false } } })
  t.teardown(async () => { await lb.stop(); await backend.close() })
  await req(`${lb.url}/`, { headers: { host: 'h.test' } })
  const h = backend.seen.at(-1)!.headers
  t.same([h['x-forwarded-for'], h['x-forwarded-proto'], h['x-forwarded-host']], ['127.0.0.1', 'http', 'h.test'])
})
