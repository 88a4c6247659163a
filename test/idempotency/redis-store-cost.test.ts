/**
 * What a keyed request costs Redis (issue 29): the commands its scripts run inside Redis (a first
 * execution, a replay), and the writes the store's commands of one event-loop turn take. Counted on a
 * real redis-server with INFO commandstats and on the client's own socket, never timed.
 */
import t from 'tap'
import type { Redis } from 'ioredis'
import { IdempotencyCore, nextToken } from '../../src/shared/idempotency/core.js'
import { RedisStore } from '../../src/shared/idempotency/redis-store.js'
import { startRedis } from '../helpers/redis.js'
import { connectRedis } from '../helpers/ioredis.js'

const settings = { leaseMs: 5000, ttlMs: 60_000, maxResponseBytes: 4096, waitMs: 0 }

/** calls per command since the last CONFIG RESETSTAT, minus the housekeeping of the count itself */
async function commands (c: Redis): Promise<Record<string, number>> {
  const text = await c.info('commandstats')
  const out: Record<string, number> = {}
  for (const m of text.matchAll(/cmdstat_([^:]+):calls=(\d+)/g)) if (!/^(info|config|ping|client)/.test(m[1]!)) out[m[1]!] = Number(m[2])
  return out
}

/** the commands run inside the scripts (everything but EVALSHA/EVAL themselves) */
function inner (c: Record<string, number>): number {
  let n = 0
  for (const [k, v] of Object.entries(c)) if (k !== 'evalsha' && k !== 'eval') n += v
  return n
}

t.test('a first execution runs 7 commands inside Redis, a replay 2 (were 9 and 4)', async (t) => {
  const server = await startRedis()
  const client = await connectRedis(server.url)
  t.teardown(async () => { client.disconnect(); await server.close() })
  const core = new IdempotencyCore(new RedisStore(client, { keyPrefix: 'cost:' }), settings)
  // the scripts are loaded (EVAL after NOSCRIPT) on their first use: not counted
  const warm = await core.begin('s', 'warm', 'fp')
  if (warm.kind === 'proceed') await core.complete(warm.claim, { status: 201, headers: [], body: Buffer.from('x') })

  await client.config('RESETSTAT')
  const r = await core.begin('s', 'k1', 'fp')
  t.equal(r.kind, 'proceed')
  if (r.kind !== 'proceed') return
  t.ok(await core.complete(r.claim, { status: 201, headers: ['content-type', 'application/json'], body: Buffer.from('{"id":1}') }))
  const first = await commands(client)
  t.equal(first['evalsha'], 2, 'two scripts: begin and finish')
  t.equal(inner(first), 7, `7 commands inside the scripts: ${JSON.stringify(first)}`)

  await client.config('RESETSTAT')
  const again = await core.begin('s', 'k1', 'fp')
  t.equal(again.kind, 'replay')
  if (again.kind === 'replay') t.equal(again.response.body.toString(), '{"id":1}')
  const replay = await commands(client)
  t.equal(replay['evalsha'], 1)
  t.equal(inner(replay), 2, `2 commands inside the script: ${JSON.stringify(replay)}`)
})

t.test('the claims of one event-loop turn leave in one write, and each gets its own answer', async (t) => {
  const server = await startRedis()
  const client = await connectRedis(server.url)
  t.teardown(async () => { client.disconnect(); await server.close() })
  const core = new IdempotencyCore(new RedisStore(client, { keyPrefix: 'turn:' }), settings)
  const warm = await core.begin('s', 'warm', 'fp')
  if (warm.kind === 'proceed') await core.release(warm.claim)
  // count what reaches the socket's own write functions (Node's Writable calls one per write or writev)
  const s = client.stream as unknown as { _write: (...a: unknown[]) => void, _writev?: (...a: unknown[]) => void }
  let writes = 0
  const w = s._write
  const wv = s._writev
  s._write = function (...a: unknown[]) { writes++; return w.apply(this, a) }
  if (wv !== undefined) s._writev = function (...a: unknown[]) { writes++; return wv.apply(this, a) }
  t.teardown(() => { s._write = w; if (wv !== undefined) s._writev = wv })
  const n = 16
  const outcomes = await Promise.all(Array.from({ length: n }, (_, i) => core.begin('s', `k${i}`, `fp${i}`)))
  t.equal(writes, 1, `${n} claims, one write`)
  t.same(outcomes.map((o) => o.kind), Array(n).fill('proceed'))
  const fences = outcomes.map((o) => o.kind === 'proceed' ? o.claim.fence : 0)
  t.same(fences, Array(n).fill(1))
  for (const o of outcomes) if (o.kind === 'proceed') await core.release(o.claim)
})

t.test('owner tokens are unique and never empty (an emptied token marks a finished record)', async (t) => {
  const seen = new Set<string>()
  for (let i = 0; i < 100_000; i++) {
    const k = nextToken()
    if (k === '' || seen.has(k)) t.fail(`token ${JSON.stringify(k)}`)
    seen.add(k)
  }
  t.equal(seen.size, 100_000)
})
