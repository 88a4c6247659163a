/**
 * Access rules and local rate limits through the real CLI: 403 / 429 problem+json answers with their
 * headers, what was sent against what the upstream received, the metrics, and a live reload that
 * changes a limit.
 */
import t from 'tap'
import { writeFileSync } from 'node:fs'
import { stringify } from 'yaml'
import { startBackend } from '../helpers/backend.js'
import { startClaylb, writeConfig } from '../helpers/claylb.js'
import { req } from '../helpers/http.js'
import { scrape, value } from '../helpers/metrics.js'

t.test('access: deny and allow by address, through a trusted proxy, 403 problem+json', async (t) => {
  const b = await startBackend()
  t.teardown(() => b.close())
  const lb = await startClaylb({
    config: {
      upstreams: [{ url: b.url }],
      log: { access: false },
      trustedProxies: ['127.0.0.1'],
      access: [
        { match: { pathPrefix: '/admin' }, deny: ['127.0.0.0/8', '::ffff:127.0.0.0/104'] },
        { match: { pathPrefix: '/private' }, allow: ['10.0.0.0/8', 'fd00::/8'] },
      ],
    },
  })
  t.teardown(() => lb.stop())
  const before = b.count
  const denied = await req(`${lb.url}/admin/x`)
  t.equal(denied.status, 403)
  t.equal(denied.headers['content-type'], 'application/problem+json')
  t.match(JSON.parse(denied.body), { type: 'urn:claylb:problem:access-denied', status: 403 })
  t.equal((await req(`${lb.url}/private`)).status, 403, 'outside allow: refused')
  // the trusted peer vouches for the last hop it appended
  t.equal((await req(`${lb.url}/private`, { headers: { 'x-forwarded-for': '192.0.2.1, 10.9.8.7' } })).status, 200, 'a forwarded client inside allow')
  t.equal((await req(`${lb.url}/private`, { headers: { 'x-forwarded-for': '10.9.8.7, 192.0.2.1' } })).status, 403, 'only the last hop counts')
  t.equal((await req(`${lb.url}/private`, { headers: { 'x-forwarded-for': 'fd00::5' } })).status, 200, 'IPv6 in allow')
  t.equal((await req(`${lb.url}/other`)).status, 200, 'no rule matches: served')
  t.equal(b.count - before, 3, 'the upstream received exactly the admitted requests')
  t.equal(value(await scrape(lb.admin), 'claylb_access_denied_total'), 3)
})

t.test('local rate limit: a key over its bucket is refused 429 with retry-after and RateLimit fields; other keys and unkeyed requests pass; live reload changes it', async (t) => {
  const b = await startBackend()
  t.teardown(() => b.close())
  const base = { upstreams: [{ url: b.url }], log: { access: false } }
  const limit = (burst: number): Record<string, unknown> => ({ ...base, rateLimits: [{ name: 'per-user', match: { pathPrefix: '/api' }, key: 'header:x-user', rate: '1/h', burst, scope: 'local' }] })
  const file = writeConfig(limit(2))
  const lb = await startClaylb({ args: ['--config', file] })
  t.teardown(() => lb.stop())
  const as = (user: string | undefined, path = '/api/x') => req(`${lb.url}${path}`, user === undefined ? {} : { headers: { 'x-user': user } })
  const before = b.count
  const a = []
  for (let i = 0; i < 5; i++) a.push((await as('alice')).status)
  t.same(a, [200, 200, 200, 429, 429], 'burst 2: the bucket holds 3')
  const r = await as('alice')
  t.equal(r.status, 429)
  t.equal(r.headers['content-type'], 'application/problem+json')
  t.match(JSON.parse(r.body), { type: 'urn:claylb:problem:rate-limited', status: 429 })
  t.ok(Number(r.headers['retry-after']) > 0, 'retry-after')
  t.equal(r.headers['ratelimit-policy'], '"per-user";q=1;w=3600')
  t.match(r.headers['ratelimit'], /^"per-user";r=0;t=\d+$/)
  t.equal((await as('bob')).status, 200, 'another key has its own bucket')
  t.equal((await as(undefined)).status, 200, 'a request without the key is not counted')
  t.equal((await as('alice', '/web')).status, 200, 'a request the match does not select is not counted')
  t.equal(b.count - before, 6, 'the upstream received exactly the admitted requests')
  t.equal(value(await scrape(lb.admin), 'claylb_rate_limited_total', { limit: 'per-user' }), 3)

  // a reload that leaves the limit as it was (an access rule added): its buckets carry over
  const reloads = (): number => lb.logs.filter((x) => x['msg'] === 'reload applied').length
  const reload = async (config: Record<string, unknown>): Promise<void> => {
    const n = reloads()
    writeFileSync(file, stringify(config))
    lb.proc.kill('SIGHUP')
    await lb.waitForLog(() => reloads() > n, 20_000)
  }
  await reload({ ...limit(2), access: [{ match: { pathPrefix: '/nowhere' }, deny: ['0.0.0.0/0'] }] })
  t.equal((await as('alice')).status, 429, 'an unchanged limit keeps its buckets across a reload')
  // a reload with a larger burst: a new bucket
  await reload(limit(9))
  let ok = 0
  for (let i = 0; i < 12; i++) if ((await as('alice')).status === 200) ok++
  t.equal(ok, 10, 'after the reload: burst 9, 10 admitted')
  // and without the limit: everything passes
  await reload(base)
  for (let i = 0; i < 5; i++) t.equal((await as('alice')).status, 200)
})

t.test('local across 2 proxy processes: one bucket for the instance (leased from the primary)', async (t) => {
  const b = await startBackend()
  t.teardown(() => b.close())
  const lb = await startClaylb({
    config: { upstreams: [{ url: b.url }], log: { access: false }, listen: { processes: 2 }, rateLimits: [{ name: 'all', key: 'route', rate: '1/h', burst: 7, scope: 'local' }] },
  })
  t.teardown(() => lb.stop())
  // new connections each time, so both processes serve
  const statuses = await Promise.all(Array.from({ length: 40 }, () => req(`${lb.url}/`, { headers: { connection: 'close' } }).then((r) => r.status)))
  t.equal(statuses.filter((s) => s === 200).length, 8, 'the instance admits burst + 1 in all')
  t.equal(b.count, 8)
  t.equal(value(await scrape(lb.admin), 'claylb_rate_limited_total', { limit: 'all' }), 32, 'refusals summed over the processes')
})
