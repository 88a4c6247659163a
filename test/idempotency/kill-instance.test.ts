/**
 * A whole claylb instance dies mid-request (SIGKILL of its process group), two instances on one
 * Redis. The key's owner is gone: its lease ends without a result. Never silent: retries on the other
 * instance get outcome-unknown (or, when the upstream dedupes, that first execution's answer), never a
 * fresh execution.
 */
import t from 'tap'
import { startClaylb, type Claylb } from '../helpers/claylb.js'
import { req, sleep } from '../helpers/http.js'
import { connectRedis } from '../helpers/ioredis.js'
import { startOrdersApp } from '../helpers/orders-app.js'
import { startRedis } from '../helpers/redis.js'
import { until } from '../workers/load.js'
import { newKey, send, type Answer } from './http-conformance.js'
import { executions, ordersCount } from './stack.js'

const KEYS = 8
const LOCK_SECONDS = 1

/** Kill `victim` (and its workers) once `started()` says every request reached the upstream. */
async function killWhenExecuting (victim: Claylb, started: () => Promise<boolean>): Promise<void> {
  await until(started, (ok) => ok, 30_000, 'every keyed request reached the upstream')
  process.kill(-victim.pid, 'SIGKILL')
  await victim.exited
}

/** Retry `key` on `url` until the answer is final (anything but 409 in flight), at most `ms`. */
async function retryUntilFinal (url: string, key: string, body: unknown, ms: number): Promise<Answer[]> {
  const seen: Answer[] = []
  const end = Date.now() + ms
  for (;;) {
    const a = await send(url, { key, body })
    seen.push(a)
    const type = a.status === 409 ? (JSON.parse(a.body) as { type: string }).type : ''
    if (type !== 'urn:claylb:problem:idempotency-in-flight' || Date.now() > end) return seen
    await sleep(150)
  }
}

const typeOf = (a: Answer): string => a.status >= 400 ? (JSON.parse(a.body) as { type: string }).type : String(a.status)

t.test('static upstream that does not dedupe: each key executes once; retries get outcome-unknown, never a fresh execution', async (t) => {
  const redis = await startRedis({ useEnv: false })
  t.teardown(() => redis.close())
  const client = await connectRedis(redis.url)
  t.teardown(() => client.disconnect())
  const app = await startOrdersApp('static', { url: redis.url })
  t.teardown(() => app.kill())
  const config = {
    upstreams: [{ url: app.url }],
    redis: { url: redis.url, commandTimeoutMs: 3000 },
    idempotency: { routes: [{ match: 'POST /orders', required: true }], lockSeconds: LOCK_SECONDS },
    log: { access: false },
  }
  const [victim, survivor] = await Promise.all([startClaylb({ config, detached: true }), startClaylb({ config })])
  t.teardown(() => survivor.stop())
  const keys = Array.from({ length: KEYS }, () => newKey())
  const before = await executions([app])
  // slow answers: the victim dies while the upstream is still working on every one of them
  const firsts = keys.map((key, i) => send(victim.url, { key, body: { n: i }, headers: { 'x-demo-delay-ms': '2000' } }).catch((err: Error) => err))
  await killWhenExecuting(victim, async () => await executions([app]) >= before + KEYS)
  for (const f of await Promise.all(firsts)) t.ok(f instanceof Error, 'the first clients lost their connection with the instance')

  const finals: Answer[] = []
  for (const [i, key] of keys.entries()) {
    const seen = await retryUntilFinal(survivor.url, key, { n: i }, 30_000)
    t.same([...new Set(seen.map(typeOf))].filter((x) => x !== 'urn:claylb:problem:idempotency-in-flight'), ['urn:claylb:problem:outcome-unknown'], `key ${i}: in flight while the dead owner's lease lasted, then outcome-unknown`)
    finals.push(seen.at(-1)!)
  }
  t.ok(finals.every((a) => a.headers['retry-after'] === undefined), 'no retry-after: retrying cannot help')
  // the upstream finishes the requests the dead instance sent it; nothing new starts
  await sleep(2500)
  for (const [i, key] of keys.entries()) t.equal(typeOf(await send(survivor.url, { key, body: { n: i } })), 'urn:claylb:problem:outcome-unknown', `key ${i}: still unknown after the upstream finished`)
  t.equal(await executions([app]), before + KEYS, 'each key executed exactly once')
  t.equal(await ordersCount(client), KEYS)
})

t.test('demo app (upstreamDedupes): exactly one order per key; the retry gets that order, then replays', async (t) => {
  const redis = await startRedis({ useEnv: false })
  t.teardown(() => redis.close())
  const config = {
    workers: { count: 2, faults: true },
    redis: { url: redis.url, commandTimeoutMs: 3000 },
    idempotency: { routes: [{ match: 'POST /orders', required: true, upstreamDedupes: true }], lockSeconds: LOCK_SECONDS },
    log: { access: false },
  }
  const [victim, survivor] = await Promise.all([startClaylb({ config, detached: true }), startClaylb({ config })])
  t.teardown(() => survivor.stop())
  const count = async (): Promise<number> => (JSON.parse((await req(`${survivor.url}/orders/count`)).body) as { count: number }).count
  const keys = Array.from({ length: KEYS }, () => newKey())
  // the victim's workers hold every answer until the victim (its process group, workers too) is killed:
  // a delay far longer than the kill takes on a busy machine, so no first client is answered before it
  const firsts = keys.map((key, i) => send(victim.url, { key, body: { n: i }, headers: { 'x-demo-delay-ms': '60000' } }).catch((err: Error) => err))
  // the orders are created before the delay: once all are counted, every worker is mid-request
  await killWhenExecuting(victim, async () => await count() >= KEYS)
  for (const f of await Promise.all(firsts)) t.ok(f instanceof Error, 'the first clients lost their connection with the instance')

  for (const [i, key] of keys.entries()) {
    const seen = await retryUntilFinal(survivor.url, key, { n: i }, 30_000)
    const last = seen.at(-1)!
    t.equal(last.status, 201, `key ${i}: the retry eventually got the order (${seen.map(typeOf).join(', ')})`)
    t.equal(last.headers['x-demo-deduped'], 'true', `key ${i}: the order the first request created`)
    t.equal(JSON.parse(last.body).n, i)
    const replay = await send(survivor.url, { key, body: { n: i } })
    t.equal(replay.headers['idempotent-replayed'], 'true', `key ${i}: then replays`)
    t.equal(JSON.parse(replay.body).id, JSON.parse(last.body).id, 'same order id')
  }
  t.equal(await count(), KEYS, 'exactly one order per key')
})
