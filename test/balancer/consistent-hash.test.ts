import t from 'tap'
import fc from 'fast-check'
import { testCluster } from '../helpers/hosts.js'
import { ConsistentHash } from '../../src/data/balancer/consistent-hash.js'
import { hashKey, hashString, parseHashOn, NO_KEY, type PickContext } from '../../src/data/balancer/hash-key.js'
import type { Host } from '../../src/data/upstream/host.js'
import { startBackend } from '../helpers/backend.js'
import { startClaylb } from '../helpers/claylb.js'
import { req } from '../helpers/http.js'

const KEYS = Array.from({ length: 20_000 }, (_, i) => hashString(`user-${i}`))

function owners (b: ConsistentHash, keys: readonly number[]): Array<Host | undefined> {
  return keys.map((k) => b.pickHash(k))
}

t.test('removing one of N upstreams moves only the keys it held, and at most 1/N + 5% of them', async (t) => {
  await fc.assert(fc.asyncProperty(fc.integer({ min: 2, max: 12 }), fc.nat(), async (n, r) => {
    const { cluster, hosts } = testCluster(n)
    const b = new ConsistentHash(cluster, { kind: 'ip' })
    const before = owners(b, KEYS)
    const gone = hosts[r % n]!
    cluster.replace(hosts.filter((h) => h !== gone))
    const after = owners(b, KEYS)
    let moved = 0
    for (let i = 0; i < KEYS.length; i++) {
      if (before[i] === after[i]) continue
      moved++
      if (before[i] !== gone) return false // a key of a host that stayed moved
    }
    await cluster.close()
    return moved / KEYS.length <= 1 / n + 0.05
  }), { numRuns: 30 })
})

t.test('a host turned unavailable sends its keys elsewhere, the others keep theirs, and they come back', async (t) => {
  await fc.assert(fc.asyncProperty(fc.integer({ min: 2, max: 10 }), fc.nat(), async (n, r) => {
    const { cluster, hosts } = testCluster(n)
    const b = new ConsistentHash(cluster, { kind: 'ip' })
    const keys = KEYS.slice(0, 4000)
    const before = owners(b, keys)
    const down = hosts[r % n]!
    down.setHealthy(false)
    const during = owners(b, keys)
    down.setHealthy(true)
    const back = owners(b, keys)
    await cluster.close()
    return keys.every((_, i) => during[i] !== down && (before[i] === down || during[i] === before[i]) && back[i] === before[i])
  }), { numRuns: 30 })
})

t.test('weights are honoured: each host gets its weighted share within 5 points', async (t) => {
  await fc.assert(fc.asyncProperty(fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 2, maxLength: 8 }), async (weights) => {
    const { cluster, hosts } = testCluster(weights.length, weights)
    const b = new ConsistentHash(cluster, { kind: 'ip' })
    const count = new Map<Host | undefined, number>()
    for (const h of owners(b, KEYS)) count.set(h, (count.get(h) ?? 0) + 1)
    const total = weights.reduce((a, w) => a + w, 0)
    await cluster.close()
    return hosts.every((h, i) => Math.abs((count.get(h) ?? 0) / KEYS.length - weights[i]! / total) <= 0.05)
  }), { numRuns: 30 })
})

t.test('exclude (a retry) goes to another host; none available: undefined', async (t) => {
  const { cluster, hosts } = testCluster(3)
  const b = new ConsistentHash(cluster, { kind: 'ip' })
  for (const k of KEYS.slice(0, 500)) {
    const first = b.pickHash(k)!
    const other = b.pickHash(k, first)
    t.not(other, first)
    t.not(other, undefined)
  }
  for (const h of hosts) h.setHealthy(false)
  t.equal(b.pickHash(KEYS[0]!), undefined)
  await cluster.close()
})

function ctx (raw: string[], path = '/a?b=1', clientAddress = '10.0.0.1'): PickContext {
  return { rawHeaders: raw, path, clientAddress }
}

t.test('keys: header (any case), one cookie, ip, path without its query; missing key: round robin', async (t) => {
  const on = (s: string) => parseHashOn(s)!
  t.equal(hashKey(on('header:X-User'), ctx(['x-user', 'alice'])), hashString('alice'))
  t.equal(hashKey(on('header:x-user'), ctx(['X-USER', 'alice'])), hashString('alice'))
  t.equal(hashKey(on('header:x-user'), ctx(['x-other', 'alice'])), NO_KEY)
  t.equal(hashKey(on('cookie:sid'), ctx(['Cookie', 'a=1; sid=abc; sidx=2'])), hashString('abc'))
  t.equal(hashKey(on('cookie:sid'), ctx(['cookie', 'a=1', 'cookie', 'sid="abc"'])), hashString('abc'))
  t.equal(hashKey(on('cookie:sid'), ctx(['cookie', 'xsid=1; sidx=2'])), NO_KEY)
  t.equal(hashKey(on('ip'), ctx([])), hashString('10.0.0.1'))
  t.equal(hashKey(on('path'), ctx([])), hashString('/a'))
  t.equal(parseHashOn('query:x'), undefined)
  t.equal(parseHashOn('header:'), undefined)

  const { cluster, hosts } = testCluster(3)
  const b = new ConsistentHash(cluster, { kind: 'header', name: 'x-user' })
  const seen = new Set<Host | undefined>()
  for (let i = 0; i < 3; i++) seen.add(b.pick(undefined, ctx([])))
  t.equal(seen.size, 3, 'no key: every host in turn')
  const same = new Set<Host | undefined>()
  for (let i = 0; i < 20; i++) same.add(b.pick(undefined, ctx(['x-user', 'bob'])))
  t.equal(same.size, 1, 'the same key: the same host')
  t.ok(hosts.includes([...same][0]!))
  await cluster.close()
})

t.test('consistent-hash through the CLI: the same header goes to the same upstream; a bad `on` is a config error', async (t) => {
  const backends = await Promise.all([0, 1, 2].map((i) => startBackend((q, s) => { q.resume(); s.end(`b${i}`) })))
  const lb = await startClaylb({
    config: { upstreams: backends.map((b) => ({ url: b.url })), balancer: { policy: 'consistent-hash', on: 'header:x-user' }, healthCheck: { enabled: false }, log: { access: false } },
  })
  t.teardown(async () => { await lb.stop(); for (const b of backends) await b.close() })
  const byUser = new Map<string, Set<string>>()
  for (let round = 0; round < 3; round++) {
    for (let u = 0; u < 30; u++) {
      const r = await req(`${lb.url}/x`, { headers: { 'x-user': `u${u}` } })
      const set = byUser.get(`u${u}`) ?? new Set()
      set.add(r.body)
      byUser.set(`u${u}`, set)
    }
  }
  t.ok([...byUser.values()].every((s) => s.size === 1), 'each user always reached one upstream')
  t.equal(new Set([...byUser.values()].map((s) => [...s][0])).size, 3, '30 users spread over all three')

  const bad = await startClaylb({ config: { upstreams: [{ url: backends[0]!.url }], balancer: { policy: 'consistent-hash', on: 'query:x' } } }).catch((e: Error) => e)
  t.ok(bad instanceof Error && /balancer\.on: must be "header:NAME"/.test(String(bad.message)), String(bad))
  const none = await startClaylb({ config: { upstreams: [{ url: backends[0]!.url }], pools: { p: { upstreams: [{ url: backends[0]!.url }], balancer: { policy: 'consistent-hash' } } } } }).catch((e: Error) => e)
  t.ok(none instanceof Error && /pools\.p\.balancer\.on: consistent-hash needs/.test(String(none.message)), String(none))
})
