import t from 'tap'
import { MemoryStore } from '../../src/idempotency/memory-store.js'
import { storeConformance } from './store-conformance.js'

let store: MemoryStore | undefined
t.teardown(() => store?.close())
storeConformance(t, () => (store = new MemoryStore()))

t.test('counters: executions, replays, rejections, lost leases, unknown outcomes', async (t) => {
  const { IdempotencyCore } = await import('../../src/idempotency/core.js')
  const { IdempotencyCounters } = await import('../../src/idempotency/counters.js')
  const counters = new IdempotencyCounters()
  const s = new MemoryStore()
  t.teardown(() => s.close())
  const core = new IdempotencyCore(s, { leaseMs: 100, ttlMs: 10_000, maxResponseBytes: 100, waitMs: 0 }, counters)
  const a = await core.begin('s', 'a', 'fp')
  if (a.kind !== 'proceed') throw new Error('expected proceed')
  await core.complete(a.claim, { status: 201, headers: [], body: Buffer.from('x') })
  await core.begin('s', 'a', 'fp')
  const b = await core.begin('s', 'b', 'fp')
  if (b.kind !== 'proceed') throw new Error('expected proceed')
  await core.markUnknown(b.claim)
  const c = await core.begin('s', 'c', 'fp')
  if (c.kind !== 'proceed') throw new Error('expected proceed')
  c.claim.stopRenewal()
  await new Promise((resolve) => setTimeout(resolve, 200))
  await core.complete(c.claim, { status: 201, headers: [], body: Buffer.alloc(0) })
  counters.rejected(409)
  t.same({ e: counters.executions, r: counters.replays, u: counters.unknownOutcomes, l: counters.leaseExpiries, c409: counters.rejections[409] }, { e: 3, r: 1, u: 1, l: 1, c409: 1 })
})
