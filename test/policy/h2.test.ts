/**
 * Over HTTP/2 the same answers: a 429 with retry-after and the RateLimit fields, a 403, on streams of
 * one session that then serves the next stream.
 */
import t from 'tap'
import { startBackend } from '../helpers/backend.js'
import { startClaylb } from '../helpers/claylb.js'
import { Pki } from '../helpers/pki.js'
import { h2, h2session } from '../helpers/tls-client.js'

t.test('HTTP/2: 429 with its fields and 403, then the session goes on', async (t) => {
  const pki = new Pki()
  const a = pki.issue(['a.test'])
  const backend = await startBackend()
  t.teardown(() => backend.close())
  const lb = await startClaylb({
    args: ['--upstream', backend.url],
    config: {
      healthCheck: { enabled: false },
      log: { access: false },
      listen: { http2: true, tls: { cert: a.cert, key: a.key } },
      rateLimits: [{ name: 'h2', match: { pathPrefix: '/limited' }, key: 'route', rate: '1/h', burst: 1, scope: 'local' }],
      access: [{ match: { pathPrefix: '/closed' }, deny: ['0.0.0.0/0', '::/0'] }],
    },
  })
  t.teardown(() => lb.stop())
  const s = await h2session(Number(new URL(lb.url).port), 'a.test', pki.caPem)
  t.teardown(() => s.close())
  t.equal((await h2(s, { path: '/limited' })).status, 200)
  t.equal((await h2(s, { path: '/limited' })).status, 200)
  const r = await h2(s, { path: '/limited' })
  t.equal(r.status, 429)
  t.equal(r.headers['content-type'], 'application/problem+json')
  t.equal(r.headers['ratelimit-policy'], '"h2";q=1;w=3600')
  t.match(String(r.headers['ratelimit']), /^"h2";r=0;t=\d+$/)
  t.ok(Number(r.headers['retry-after']) > 0)
  const d = await h2(s, { path: '/closed' })
  t.equal(d.status, 403)
  t.match(JSON.parse(d.body), { type: 'urn:claylb:problem:access-denied' })
  t.equal((await h2(s, { path: '/open' })).status, 200, 'the session serves the next stream')
  t.equal(backend.count, 3, 'the upstream received the admitted ones only')
})
