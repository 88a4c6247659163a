/**
 * Redis frozen (SIGSTOP: connections open, nothing answers) for longer than the lease while keyed
 * requests run, two claylb instances on it. Claims time out, renewals and records cannot land, leases
 * end on Redis's clock: no key may execute twice, whatever each client was told.
 */
import t from 'tap'
import { req, sleep } from '../helpers/http.js'
import { newKey, send, type Answer } from './http-conformance.js'
import { setupWithRedis } from './stack.js'

const KEYS = 40
const LEASE_MS = 1000
const FROZEN_MS = 3500

const typeOf = (a: Answer): string => a.status >= 300 ? (JSON.parse(a.body) as { type: string }).type : String(a.status)

t.test('Redis SIGSTOPped past the lease under keyed requests: no key executes twice', async (t) => {
  const s = await setupWithRedis(t, { idempotency: { lockSeconds: LEASE_MS / 1000 } })
  const byKey = async (): Promise<Record<string, number>> => {
    const out: Record<string, number> = {}
    for (const a of s.apps) {
      const e = JSON.parse((await req(`${a.url}/executions`)).body) as { byKey: Record<string, number> }
      for (const [k, n] of Object.entries(e.byKey)) out[k] = (out[k] ?? 0) + n
    }
    return out
  }
  const keys = Array.from({ length: KEYS }, () => newKey())
  // keyed requests start in waves, so claims, executions and records are all under way at the freeze
  const firsts: Array<Promise<Answer>> = []
  let frozenAt = 0
  for (const [i, key] of keys.entries()) {
    firsts.push(send(s.lbs[i % 2]!.url, { key, body: { k: key }, headers: { 'x-demo-delay-ms': String(100 + (i % 5) * 150) } }))
    if (i === KEYS / 2) {
      // freeze once the first half has executed at least once (progress, not time)
      for (let n = 0; n < 200 && Object.keys(await byKey()).length === 0; n++) await sleep(20)
      s.redis.pause()
      frozenAt = Date.now()
      t.teardown(() => s.redis.resume())
    }
    await sleep(10)
  }
  await sleep(Math.max(0, FROZEN_MS - (Date.now() - frozenAt)))
  s.redis.resume()
  const first = await Promise.all(firsts)
  t.comment(`first answers: ${JSON.stringify(count(first.map(typeOf)))}`)

  // every client retries (also those that got their 201: as if it was lost on the way) until final
  const finals: string[] = []
  let replays = 0
  for (const [i, key] of keys.entries()) {
    let a: Answer = first[i]!
    for (let n = 0; n < 100; n++) {
      const type = typeOf(a)
      if (n > 0 && type !== 'urn:claylb:problem:idempotency-in-flight' && type !== 'urn:claylb:problem:state-unavailable') break
      await sleep(n === 0 ? 0 : 200)
      a = await send(s.lbs[(i + n + 1) % 2]!.url, { key, body: { k: key } })
    }
    if (a.headers['idempotent-replayed'] === 'true') replays++
    finals.push(typeOf(a))
  }
  t.ok(replays > 0, `retries after a 201 replayed it (${replays})`)
  t.comment(`final answers: ${JSON.stringify(count(finals))}`)
  t.ok(finals.every((f) => f === '201' || f === 'urn:claylb:problem:outcome-unknown'), 'every key ended executed (201, replayed) or outcome-unknown')
  t.ok(first.some((a) => a.status === 503 || a.status === 409) || finals.some((f) => f !== '201'), 'the freeze was felt by the clients')

  const executed = await byKey()
  const twice = Object.entries(executed).filter(([, n]) => n > 1)
  t.same(twice, [], 'no key executed twice')
  for (const [i, key] of keys.entries()) {
    if (finals[i] === '201') t.equal(executed[key], 1, `a key answered 201 executed once (${i})`)
  }
})

function count (xs: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {}
  for (const x of xs) out[x] = (out[x] ?? 0) + 1
  return out
}
