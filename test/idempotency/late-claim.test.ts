/**
 * A claim whose reply reaches the owner after its whole lease (the process was stopped, or the store
 * that slow) is never acted on: the record may already say unknown, or belong to a retry. The core
 * releases it and refuses (503: nothing executed). A store that answers `begin` only after the lease
 * stands in for the stopped process.
 */
import t from 'tap'
import { IdempotencyCore } from '../../src/shared/idempotency/core.js'
import { MemoryStore } from '../../src/shared/idempotency/memory-store.js'
import { StoreUnavailableError } from '../../src/shared/idempotency/store.js'
import { sleep } from '../helpers/http.js'

const LEASE_MS = 200

/** begins as the memory store does, but its reply arrives after the lease */
class LateStore extends MemoryStore {
  late = true
  override async begin (...args: Parameters<MemoryStore['begin']>): ReturnType<MemoryStore['begin']> {
    const r = await super.begin(...args)
    if (this.late) await sleep(LEASE_MS + 100)
    return r
  }
}

t.test('a claim that arrives after its lease is released and refused, never forwarded', async (t) => {
  const store = new LateStore()
  t.teardown(() => store.close())
  const core = new IdempotencyCore(store, { leaseMs: LEASE_MS, ttlMs: 60_000, maxResponseBytes: 1024, waitMs: 0 })
  await t.rejects(core.begin('s', 'k', 'fp'), StoreUnavailableError, 'refused: the request must not execute on a lease that ended')
  store.late = false
  // released: the retry claims it (no unknown outcome left behind by a request that never ran)
  let r = await core.begin('s', 'k', 'fp')
  for (let i = 0; r.kind === 'in-flight' && i < 50; i++) { await sleep(20); r = await core.begin('s', 'k', 'fp') }
  t.equal(r.kind, 'proceed', 'the key was released: the retry executes')
  if (r.kind === 'proceed') await core.release(r.claim)
})
