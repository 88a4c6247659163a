/**
 * Global rate limits on a real Redis: one bucket across instances (what two instances admit together
 * is exactly the bucket), and onStateDown honoured while Redis is down.
 */
import t from 'tap'
import { startBackend } from '../helpers/backend.js'
import { startClaylb } from '../helpers/claylb.js'
import { req } from '../helpers/http.js'
import { startRedis } from '../helpers/redis.js'
import { scrape, value } from '../helpers/metrics.js'

t.test('two instances share one bucket: burst + 1 admitted in all, the rest 429', async (t) => {
  const redis = await startRedis({ useEnv: false })
  t.teardown(() => redis.close())
  const b = await startBackend()
  t.teardown(() => b.close())
  const config = { upstreams: [{ url: b.url }], log: { access: false }, redis: { url: redis.url }, rateLimits: [{ name: 'shared', key: 'header:x-tenant', rate: '1/h', burst: 9 }] }
  const [one, two] = await Promise.all([startClaylb({ config }), startClaylb({ config })])
  t.teardown(() => one!.stop())
  t.teardown(() => two!.stop())
  const statuses: number[] = []
  // alternately, so each instance's lease is taken while the other holds tokens too
  for (let i = 0; i < 30; i++) statuses.push((await req(`${(i % 2 === 0 ? one : two)!.url}/`, { headers: { 'x-tenant': 'acme' } })).status)
  t.equal(statuses.filter((s) => s === 200).length, 10, 'burst 9: 10 admitted across both instances')
  t.equal(b.count, 10, 'the upstream received exactly those')
  t.equal((await req(`${one!.url}/`, { headers: { 'x-tenant': 'other' } })).status, 200, 'another tenant has its own bucket')
  const refused = value(await scrape(one!.admin), 'claylb_rate_limited_total', { limit: 'shared' }) + value(await scrape(two!.admin), 'claylb_rate_limited_total', { limit: 'shared' })
  t.equal(refused, 20)
})

t.test('Redis down: onStateDown deny refuses 429, allow admits; back up, the limit counts again', async (t) => {
  const redis = await startRedis({ useEnv: false })
  t.teardown(() => redis.close())
  const b = await startBackend()
  t.teardown(() => b.close())
  const lb = await startClaylb({
    config: {
      upstreams: [{ url: b.url }],
      log: { access: false },
      redis: { url: redis.url, commandTimeoutMs: 300 },
      rateLimits: [
        { name: 'strict', match: { pathPrefix: '/strict' }, key: 'route', rate: '1/h', burst: 100, onStateDown: 'deny' },
        { name: 'lenient', match: { pathPrefix: '/lenient' }, key: 'header:x-k', rate: '1/h', burst: 0, onStateDown: 'allow' },
      ],
    },
  })
  t.teardown(() => lb.stop())
  t.equal((await req(`${lb.url}/strict`)).status, 200, 'Redis up: admitted')
  const lenient = (k: string): Promise<number> => req(`${lb.url}/lenient`, { headers: { 'x-k': k } }).then((r) => r.status)
  t.equal(await lenient('a'), 200, 'Redis up: the one token')
  t.equal(await lenient('a'), 429, 'Redis up: burst 0, the second refused')
  await redis.stop()
  // the strict limit's lease may still hold tokens taken before the outage: spent first, then refused
  const strict: number[] = []
  for (let i = 0; i < 40; i++) strict.push((await req(`${lb.url}/strict`)).status)
  t.ok(strict.includes(429), 'deny: refused once the lease is spent')
  t.same(strict.slice(strict.indexOf(429)), strict.slice(strict.indexOf(429)).map(() => 429), 'deny: every request after that refused')
  const down = await req(`${lb.url}/strict`)
  t.ok(Number(down.headers['retry-after']) >= 1, 'with retry-after')
  for (let i = 0; i < 3; i++) t.equal(await lenient('b'), 200, 'allow: admitted while Redis is down (a key Redis never refused)')
  await lb.waitForLog((l) => typeof l['msg'] === 'string' && l['msg'].startsWith('rate limits: Redis unreachable'))
  await redis.start()
  // the bucket of `c` is new: one token, then refused again
  let back = 0
  for (let i = 0; i < 100 && back === 0; i++) {
    const s = await lenient('c')
    if (s === 429) back++
    else await new Promise((resolve) => setTimeout(resolve, 50))
  }
  t.equal(back, 1, 'Redis back: the limit refuses again')
})
