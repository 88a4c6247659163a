/**
 * The session guarantees, run against a standalone Redis (store.test.ts) and a 3-master Cluster
 * (cluster.test.ts) alike.
 */
import type { Test } from 'tap'
import { Cluster, type Redis } from 'ioredis'
import { buildConfig } from '../../src/shared/config/load.js'
import { createRedis, closeRedis, waitReady, key, type RedisClient } from '../../src/shared/redis/index.js'
import { signId, newSessionId } from '../../src/app-side/session/cookie.js'
import { startSessionApp, sidOf, call, SECRET, OLD_SECRET } from './session-app.js'
import { sleep } from './http.js'
import { allKeys } from './ioredis.js'
import fc from 'fast-check'

export type RedisForm = { url: string } | { cluster: string[] }

function nodesOf (client: RedisClient): Redis[] {
  return client instanceof Cluster ? client.nodes('master') : [client]
}

/** commandstats summed over every master: command name → calls */
export async function commandCalls (client: RedisClient): Promise<Record<string, number>> {
  const out: Record<string, number> = {}
  for (const node of nodesOf(client)) {
    for (const m of String(await node.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
      out[m[1]!] = (out[m[1]!] ?? 0) + Number(m[2])
    }
  }
  return out
}

export async function resetStats (client: RedisClient): Promise<void> {
  for (const node of nodesOf(client)) await node.config('RESETSTAT')
}

export async function sessionSuite (t: Test, form: RedisForm): Promise<void> {
  const config = buildConfig({ redis: { ...form, commandTimeoutMs: 500 } }, {}, {}).redis
  const redis = createRedis(config, 'app')
  const inspect = createRedis({ ...config, commandTimeoutMs: 2000 }, 'inspect')
  t.teardown(async () => { await closeRedis(redis); await closeRedis(inspect) })
  await waitReady(redis, 10_000)
  await waitReady(inspect, 10_000)
  const keyPrefix = `t${Date.now()}:`
  const app = await startSessionApp({ redis, keyPrefix, ttlSeconds: 60, maxBytes: 4096 })
  t.teardown(() => app.close())
  const hashOf = (cookie: string, prefix = keyPrefix): string => key(`${prefix}sess:`, cookie.slice(4).split('.')[0]!)

  const newSession = async (field = 'seed'): Promise<string> => {
    const r = await call(app.url, 'PUT', `/field/${field}?value=1`)
    const c = sidOf(r)
    if (!c) throw new Error(`no session cookie: ${r.status} ${r.body}`)
    return c
  }

  await t.test('a new session is stored only when written; cookie HttpOnly, SameSite=Lax, signed', async (t) => {
    const empty = await call(app.url, 'GET', '/session')
    t.same(empty.data, {})
    t.equal(sidOf(empty), undefined, 'nothing written, no cookie')
    const w = await call(app.url, 'PUT', '/field/a?value=x')
    const setCookie = String([w.headers['set-cookie']].flat()[0])
    t.match(setCookie, /^sid=[A-Za-z0-9_-]{24}\.[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Lax$/)
    const c = sidOf(w)!
    const r = await call(app.url, 'GET', '/session', c)
    t.same(r.data, { a: 'x' })
    t.equal(sidOf(r), undefined, 'no Set-Cookie when the id did not change')
  })

  await t.test('50 concurrent increments on one session: exactly 50', async (t) => {
    const c = await newSession()
    const replies = await Promise.all(Array.from({ length: 50 }, () => call(app.url, 'POST', '/counter', c)))
    t.same(replies.map((r) => r.status).filter((s) => s !== 200), [])
    t.same(replies.map((r) => r.data['count']).sort((a, b) => Number(a) - Number(b)), Array.from({ length: 50 }, (_, i) => i + 1), 'each increment saw its own step')
    t.equal((await call(app.url, 'GET', '/session', c)).data['count'], 50)
  })

  await t.test('two concurrent writers of different fields: both survive', async (t) => {
    const c = await newSession()
    const [a, b] = await Promise.all([
      call(app.url, 'PUT', '/field/a?value=1&delayMs=200', c),
      call(app.url, 'PUT', '/field/b?value=2&delayMs=300', c),
    ])
    t.equal(a.status, 200)
    t.equal(b.status, 200)
    t.same((await call(app.url, 'GET', '/session', c)).data, { seed: '1', a: '1', b: '2' })
  })

  await t.test('one request deletes A while a slower one sets B: A stays deleted', async (t) => {
    const c = await newSession('a')
    const [del, set] = await Promise.all([
      call(app.url, 'DELETE', '/field/a?delayMs=100', c),
      call(app.url, 'PUT', '/field/b?value=2&delayMs=400', c),
    ])
    t.same(del.data, {}, 'the deleter saw A go')
    t.same(set.data, { a: '1', b: '2' }, 'the slower writer had loaded A')
    t.same((await call(app.url, 'GET', '/session', c)).data, { b: '2' })
  })

  await t.test('destroy racing a slow writer: stays destroyed, the old cookie is rejected', async (t) => {
    const c = await newSession('secret')
    const slow = call(app.url, 'PUT', '/field/late?value=1&hold=1', c)
    await app.gate.arrived(1)
    const out = await call(app.url, 'POST', '/logout', c)
    t.equal(out.status, 200)
    t.equal(sidOf(out), '', 'logout clears the cookie')
    app.gate.open()
    const late = await slow
    t.match([late.status, late.data], [409, { type: 'urn:claylb:problem:session-ended' }], 'the late save is refused')
    t.equal(sidOf(late), undefined, 'and sets no cookie (the logout\'s clear stands)')
    t.equal(await inspect.exists(hashOf(c)), 0, 'nothing under the old id')
    const again = await call(app.url, 'GET', '/session', c)
    t.same(again.data, {}, 'old cookie: an empty session')
    t.equal(sidOf(again), undefined)
    const increment = await call(app.url, 'POST', '/counter', c)
    t.equal(increment.status, 409, 'a counter on the old cookie is refused, not a new session')
    t.equal(sidOf(increment), undefined)
    t.equal(await inspect.exists(hashOf(c)), 0, 'still nothing under the old id')
  })

  await t.test('a login or logout racing the same session\'s requests: never undone, stale writes refused', async (t) => {
    // Requests of session S load it and wait; a login regenerates S→S' (or a logout destroys S); more
    // requests arrive with the old cookie; then the waiting ones finish and save. The bug: each stale
    // writer answered with a cleared cookie or one of a fresh session, so the client lost the login.
    const prefix = `${keyPrefix}race${Math.random().toString(36).slice(2, 8)}:`
    const race = await startSessionApp({ redis, keyPrefix: prefix, ttlSeconds: 60 })
    t.teardown(() => race.close())
    const hashes = async (): Promise<string[]> =>
      (await allKeys(inspect as Redis | Cluster, `${prefix}sess:*`)).filter((k) => !k.endsWith(':dead')).sort()
    type Op = { kind: 'set' | 'delete' | 'increment' | 'read', loadedBefore: boolean }
    const op: fc.Arbitrary<Op> = fc.record({ kind: fc.constantFrom('set', 'delete', 'increment', 'read'), loadedBefore: fc.boolean() })
    const outside: Array<[Op[], 'login' | 'logout']> = [[Array.from({ length: 20 }, () => ({ kind: 'set', loadedBefore: true })), 'login']]
    let runs = 0
    await fc.assert(fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 10 }), fc.constantFrom('login', 'logout'), async (ops, end) => {
      runs++
      const s = sidOf(await call(race.url, 'PUT', '/field/seed?value=1'))!
      await call(race.url, 'PUT', '/field/doomed?value=1', s)
      const path = (o: Op, i: number): [string, string] => {
        const hold = o.loadedBefore ? 'hold=1' : ''
        switch (o.kind) {
          case 'set': return ['PUT', `/field/stale${i}?value=${i}&${hold}`]
          case 'delete': return ['DELETE', `/field/doomed?${hold}`]
          case 'increment': return ['POST', `/counter?${hold}`]
          case 'read': return ['GET', `/session?${hold}`]
        }
      }
      const before = ops.map((o, i) => o.loadedBefore ? call(race.url, ...path(o, i), s) : undefined)
      await race.gate.arrived(ops.filter((o) => o.loadedBefore).length)
      const ending = end === 'login' ? await call(race.url, 'POST', '/login?fields=10', s) : await call(race.url, 'POST', '/logout', s)
      const now = sidOf(ending)
      const after = await Promise.all(ops.map((o, i) => o.loadedBefore ? undefined : call(race.url, ...path(o, i), s)))
      race.gate.open()
      const replies = await Promise.all(ops.map((_, i) => before[i] ?? after[i]!))

      const fields = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`f${i}`, i]))
      const expected = end === 'login' ? { seed: '1', doomed: '1', user: 'ada', ...fields } : {}
      const problems: string[] = []
      if (end === 'login' ? !now || now === s : now !== '') problems.push(`the ${end} set ${String(now)}`)
      for (const [i, r] of replies.entries()) {
        const o = ops[i]!
        const cookie = sidOf(r)
        if (cookie !== undefined) problems.push(`#${i} ${o.kind} (loaded ${o.loadedBefore ? 'before' : 'after'}) set the cookie ${cookie || '(cleared)'}`)
        const want = o.kind === 'read' ? 200 : 409
        if (r.status !== want) problems.push(`#${i} ${o.kind}: ${r.status}, not ${want}`)
      }
      const final = end === 'login' ? await call(race.url, 'GET', '/session', now) : undefined
      if (final && JSON.stringify(final.data) !== JSON.stringify(expected)) problems.push(`S' holds ${JSON.stringify(final.data)}`)
      const left = await hashes()
      const want = end === 'login' ? [hashOf(now!, prefix)] : []
      if (JSON.stringify(left) !== JSON.stringify(want)) problems.push(`sessions in Redis: ${left.join(', ') || 'none'}`)
      if (problems.length > 0) throw new Error(`${end} with ${JSON.stringify(ops)}: ${problems.join('; ')}`)
      // the next run starts from an empty store
      if (end === 'login') await call(race.url, 'POST', '/logout', now)
    }), { numRuns: 25, examples: outside })
    t.equal(runs, 25, 'every case ran (the outside run\'s 20 writers first, then generated ones)')
  })

  await t.test('a logout racing a login is never dropped: it clears the cookie, loaded before the login or sent after', async (t) => {
    for (const loadedBefore of [true, false]) {
      const c = await newSession('cart')
      const logout = loadedBefore ? call(app.url, 'POST', '/logout?hold=1', c) : undefined
      if (loadedBefore) await app.gate.arrived(1)
      const login = await call(app.url, 'POST', '/login', c)
      const fresh = sidOf(login)!
      t.ok(fresh && fresh !== c, 'the login set a new id')
      const late = logout ?? call(app.url, 'POST', '/logout', c)
      app.gate.open()
      const out = await late
      t.equal(out.status, 200, `logout ${loadedBefore ? 'loaded before' : 'sent after'} the login: answered`)
      t.equal(sidOf(out), '', 'and clears the cookie: the user asked to log out')
    }
  })

  await t.test('fixation: regenerate gives a new id, the old id no longer loads, data kept as told', async (t) => {
    const planted = await newSession('cart')
    const login = await call(app.url, 'POST', '/login', planted)
    const fresh = sidOf(login)!
    t.ok(fresh && fresh !== planted, 'a new id')
    t.same((await call(app.url, 'GET', '/session', fresh)).data, { cart: '1', user: 'ada' }, 'data moved')
    t.same((await call(app.url, 'GET', '/session', planted)).data, {}, 'the planted id loads nothing')
    t.equal(await inspect.exists(hashOf(planted)), 0)
    const onlyUser = sidOf(await call(app.url, 'POST', '/login?keep=', fresh))!
    t.same((await call(app.url, 'GET', '/session', onlyUser)).data, { user: 'ada' }, 'keep: [] keeps nothing old')
  })

  await t.test('tampered, unknown or expired cookies: a new empty session, old data never revived', async (t) => {
    const c = await newSession('private')
    const [name, value] = c.split('=') as [string, string]
    const tampered = `${name}=${value.slice(0, -2)}${value.endsWith('AA') ? 'BB' : 'AA'}`
    t.same((await call(app.url, 'GET', '/session', tampered)).data, {})
    const otherId = `${value.slice(0, 23)}${value[23] === 'A' ? 'B' : 'A'}${value.slice(24)}`
    t.same((await call(app.url, 'GET', '/session', `${name}=${otherId}`)).data, {}, 'id changed, signature kept')
    t.same((await call(app.url, 'GET', '/session', `sid=${signId(newSessionId(), SECRET)}`)).data, {}, 'unknown id')
    const w = await call(app.url, 'PUT', '/field/x?value=1', tampered)
    t.not(sidOf(w), c, 'writing with a tampered cookie makes a new session')
    t.same((await call(app.url, 'GET', '/session', c)).data, { private: '1' }, 'the real one is untouched')

    const shortLived = await startSessionApp({ redis, keyPrefix, ttlSeconds: 1 })
    t.teardown(() => shortLived.close())
    const e = sidOf(await call(shortLived.url, 'PUT', '/field/old?value=1'))!
    await sleep(1300)
    const expired = await call(shortLived.url, 'PUT', '/field/new?value=1', e)
    t.same(expired.data, { new: '1' }, 'expired: empty, old data not revived')
    t.not(sidOf(expired), e, 'under a new id')
  })

  await t.test('secret rotation: the old secret verifies while listed, then no more', async (t) => {
    const before = await startSessionApp({ redis, keyPrefix, secrets: [OLD_SECRET] })
    const rotating = await startSessionApp({ redis, keyPrefix, secrets: [SECRET, OLD_SECRET] })
    const after = await startSessionApp({ redis, keyPrefix, secrets: [SECRET] })
    t.teardown(async () => { await before.close(); await rotating.close(); await after.close() })
    const c = sidOf(await call(before.url, 'PUT', '/field/k?value=v'))!
    t.same((await call(rotating.url, 'GET', '/session', c)).data, { k: 'v' }, 'accepted while listed')
    t.same((await call(after.url, 'GET', '/session', c)).data, {}, 'rejected once removed')
  })

  await t.test('an unchanged session costs one read and one expire, nothing else', async (t) => {
    const c = await newSession()
    await resetStats(inspect)
    const r = await call(app.url, 'GET', '/session', c)
    t.same(r.data, { seed: '1' })
    const calls = await commandCalls(inspect)
    delete calls['info']
    delete calls['config|resetstat']
    delete calls['config']
    t.same(calls, { hgetall: 1, pexpire: 1 })
    const ttl = await inspect.pttl(hashOf(c))
    t.ok(ttl > 55_000 && ttl <= 60_000, `TTL refreshed (${ttl} ms)`)
  })

  await t.test('the size budget: a clear 413 problem, nothing written', async (t) => {
    const c = await newSession()
    const r = await call(app.url, 'POST', '/big?bytes=5000', c)
    t.equal(r.status, 413)
    t.equal(r.headers['content-type'], 'application/problem+json')
    t.match(r.data, { type: 'urn:claylb:problem:session-too-large', status: 413 })
    t.same((await call(app.url, 'GET', '/session', c)).data, { seed: '1' })
  })
}
