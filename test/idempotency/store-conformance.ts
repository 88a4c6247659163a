/**
 * The one conformance suite every idempotency store passes (memory, Redis, Redis Cluster), driven
 * through the transport-free core.
 */
import type { Test } from 'tap'
import { IdempotencyCore, type BeginOutcome, type IdempotencySettings } from '../../src/shared/idempotency/core.js'
import type { IdempotencyStore, StoredResponse } from '../../src/shared/idempotency/store.js'
import { sleep } from '../helpers/http.js'
import type { ManualClock } from '../helpers/clock.js'

const settings: IdempotencySettings = { leaseMs: 5000, ttlMs: 60_000, maxResponseBytes: 1024, waitMs: 0 }

const response = (text: string, status = 201): StoredResponse => ({
  status,
  headers: ['content-type', 'application/json', 'location', '/orders/1'],
  body: Buffer.from(text),
})

let n = 0
const fresh = (): string => `key-${process.pid}-${Date.now()}-${++n}`

function proceed (t: Test, r: BeginOutcome) {
  t.equal(r.kind, 'proceed', 'claimed')
  if (r.kind !== 'proceed') throw new Error(`expected proceed, got ${r.kind}`)
  return r.claim
}

/**
 * `clock`: the clock the store runs on, when the test owns it (the memory store): leases and TTLs are
 * crossed by advancing it. Without one (Redis: expiry runs on the server's clock) time really passes.
 */
export function storeConformance (t: Test, makeStore: () => IdempotencyStore | Promise<IdempotencyStore>, clock?: ManualClock): void {
  let store: IdempotencyStore
  t.before(async () => { store = await makeStore() })
  t.teardown(() => store.close())
  const core = (s: Partial<IdempotencySettings> = {}): IdempotencyCore => new IdempotencyCore(store, { ...settings, ...s }, undefined, clock)
  /** lets `ms` of the store's time pass */
  const pass = (ms: number): Promise<void> => clock === undefined ? sleep(ms) : clock.advance(ms)

  t.test('first begin claims; a duplicate sees in-flight with the lease left; another fingerprint is a mismatch', async (t) => {
    const c = core()
    const key = fresh()
    const claim = proceed(t, await c.begin('s', key, 'fp1'))
    const again = await c.begin('s', key, 'fp1')
    t.equal(again.kind, 'in-flight')
    if (again.kind === 'in-flight') t.ok(again.remainingMs > 0 && again.remainingMs <= settings.leaseMs, `remaining ${again.remainingMs}`)
    t.equal((await c.begin('s', key, 'fp2')).kind, 'mismatch', 'mismatch while in flight')
    t.equal((await c.begin('s', key, 'fp1')).kind, 'in-flight', 'the mismatch did not touch the claim')
    t.ok(await c.complete(claim, response('{"id":1}')))
  })

  t.test('completed: the stored response replays byte for byte; a mismatch leaves it intact', async (t) => {
    const c = core()
    const key = fresh()
    const claim = proceed(t, await c.begin('s', key, 'fp'))
    const body = Buffer.from([0, 1, 2, 255, 254, 0x7b, 0x22])
    t.ok(await c.complete(claim, { status: 500, headers: ['content-type', 'application/octet-stream', 'x-a', 'b'], body }))
    const r = await c.begin('s', key, 'fp')
    t.equal(r.kind, 'replay')
    if (r.kind === 'replay') {
      t.equal(r.response.status, 500, 'errors replay too')
      t.same(r.response.headers, ['content-type', 'application/octet-stream', 'x-a', 'b'])
      t.ok(r.response.body.equals(body), 'binary body intact')
    }
    t.equal((await c.begin('s', key, 'other')).kind, 'mismatch')
    t.equal((await c.begin('s', key, 'fp')).kind, 'replay', 'still replays after the mismatch')
  })

  t.test('an empty body replays as empty', async (t) => {
    const c = core()
    const key = fresh()
    const claim = proceed(t, await c.begin('s', key, 'fp'))
    t.ok(await c.complete(claim, { status: 204, headers: [], body: Buffer.alloc(0) }))
    const r = await c.begin('s', key, 'fp')
    t.equal(r.kind, 'replay')
    if (r.kind === 'replay') { t.equal(r.response.status, 204); t.equal(r.response.body.length, 0) }
  })

  t.test('scopes and keys are separate records', async (t) => {
    const c = core()
    const key = fresh()
    const a = proceed(t, await c.begin('alice', key, 'fp'))
    const b = proceed(t, await c.begin('bob', key, 'fp'))
    t.ok(await c.complete(a, response('alice')))
    t.ok(await c.complete(b, response('bob')))
    const ra = await c.begin('alice', key, 'fp')
    const rb = await c.begin('bob', key, 'fp')
    t.equal(ra.kind === 'replay' && ra.response.body.toString(), 'alice')
    t.equal(rb.kind === 'replay' && rb.response.body.toString(), 'bob')
  })

  t.test('release frees the key at once', async (t) => {
    const c = core()
    const key = fresh()
    const claim = proceed(t, await c.begin('s', key, 'fp'))
    t.ok(await c.release(claim))
    const again = proceed(t, await c.begin('s', key, 'fp'))
    t.notOk(await c.release(claim), 'the old token cannot release the new claim')
    t.equal((await c.begin('s', key, 'fp')).kind, 'in-flight', 'the new claim stands')
    await c.release(again)
  })

  t.test('unknown outcome is stored for the record\'s TTL: retries never run it again', async (t) => {
    const c = core({ leaseMs: 300, ttlMs: 60_000 })
    const key = fresh()
    const claim = proceed(t, await c.begin('s', key, 'fp'))
    t.ok(await c.markUnknown(claim))
    const r = await c.begin('s', key, 'fp')
    t.equal(r.kind, 'unknown')
    if (r.kind === 'unknown') t.ok(r.remainingMs > 50_000 && r.remainingMs <= 60_000, `kept for the TTL (${r.remainingMs} ms left)`)
    t.equal((await c.begin('s', key, 'fp2')).kind, 'mismatch', 'a different request is still a mismatch')
    await pass(700)
    t.equal((await c.begin('s', key, 'fp')).kind, 'unknown', 'still unknown well past the lease')
  })

  t.test('an owner that vanished (lease ended, no result) leaves unknown, never a free key', async (t) => {
    const c = core({ leaseMs: 200 })
    const key = fresh()
    const gone = proceed(t, await c.begin('s', key, 'fp'))
    gone.stopRenewal() // the owner is killed: no heartbeat, no result
    const during = await c.begin('s', key, 'fp')
    t.equal(during.kind, 'in-flight')
    await pass(400)
    const r = await c.begin('s', key, 'fp')
    t.equal(r.kind, 'unknown', 'lease over without a result: unknown')
    t.equal((await c.begin('s', key, 'fp')).kind, 'unknown', 'and it stays unknown')
  })

  t.test('in-flight tells how long the first request has been running', async (t) => {
    const c = core({ leaseMs: 5000 })
    const key = fresh()
    const claim = proceed(t, await c.begin('s', key, 'fp'))
    await pass(300)
    const r = await c.begin('s', key, 'fp')
    t.equal(r.kind, 'in-flight')
    if (r.kind === 'in-flight') t.ok(r.elapsedMs >= 250 && r.elapsedMs < 5000, `elapsed ${r.elapsedMs} ms`)
    await c.release(claim)
  })

  t.test('reclaim (the upstream dedupes): an unknown record is claimed again under a higher fence', async (t) => {
    const c = core({ leaseMs: 200 })
    const key = fresh()
    const first = proceed(t, await c.begin('s', key, 'fp', true))
    t.equal(first.fence, 1)
    t.equal((await c.begin('s', key, 'fp', true)).kind, 'in-flight', 'a live owner is never displaced')
    first.stopRenewal()
    await pass(400)
    const second = proceed(t, await c.begin('s', key, 'fp', true))
    t.equal(second.id, first.id, 'the same record id goes to the upstream again')
    t.ok(second.fence > first.fence, `fence rose (${first.fence} -> ${second.fence})`)
    t.notOk(await c.complete(first, response('stale')), 'the old owner can no longer record')
    t.ok(await c.complete(second, response('deduped')))
    const r = await c.begin('s', key, 'fp', true)
    t.equal(r.kind === 'replay' && r.response.body.toString(), 'deduped')
    const marked = fresh()
    const m = proceed(t, await c.begin('s', marked, 'fp', true))
    t.ok(await c.markUnknown(m))
    const again = proceed(t, await c.begin('s', marked, 'fp', true))
    t.ok(again.fence > m.fence, 'a marked unknown is reclaimed too')
    await c.release(again)
  })

  t.test('the owner may still complete an unknown record (a late answer)', async (t) => {
    const c = core()
    const key = fresh()
    const claim = proceed(t, await c.begin('s', key, 'fp'))
    t.ok(await c.markUnknown(claim))
    t.ok(await c.complete(claim, response('late')))
    const r = await c.begin('s', key, 'fp')
    t.equal(r.kind === 'replay' && r.response.body.toString(), 'late')
  })

  t.test('renewal keeps the claim past the lease while the request is alive', async (t) => {
    // a lease long enough that a loaded machine's late timers cannot make the test lie
    const c = core({ leaseMs: 1000 })
    const key = fresh()
    const claim = proceed(t, await c.begin('s', key, 'fp'))
    await pass(2500)
    t.equal((await c.begin('s', key, 'fp')).kind, 'in-flight', 'still claimed after three leases')
    t.ok(await c.complete(claim, response('slow')))
    const r = await c.begin('s', key, 'fp')
    t.equal(r.kind === 'replay' && r.response.body.toString(), 'slow')
  })

  t.test('issue 24 case 5: a request longer than ttlMs keeps its record (every renewal moves the retention)', async (t) => {
    // ttl far below the request: before, the record expired ttlMs after the claim whatever the
    // renewals did, and the retry claimed the key again while the first still ran
    const c = core({ leaseMs: 1000, ttlMs: 200 })
    const key = fresh()
    const claim = proceed(t, await c.begin('s', key, 'fp'))
    await pass(1500)
    const retry = await c.begin('s', key, 'fp')
    t.not(retry.kind, 'proceed', `the retry did not execute again (${retry.kind})`)
    if (retry.kind === 'proceed') await c.release(retry.claim)
    t.ok(await c.complete(claim, response('long')))
    const r = await c.begin('s', key, 'fp')
    t.equal(r.kind === 'replay' && r.response.body.toString(), 'long', 'the long request\'s answer replays')
  })

  t.test('issue 24 case 5: an owner stopped past its lease leaves an unknown outcome for ttlMs, never a free key', async (t) => {
    const c = core({ leaseMs: 300, ttlMs: 200 })
    const key = fresh()
    const claim = proceed(t, await c.begin('s', key, 'fp'))
    claim.stopRenewal() // the owner stops
    await pass(400) // past the claim's ttlMs and its lease, within lease + ttlMs
    const r = await c.begin('s', key, 'fp')
    t.equal(r.kind, 'unknown', 'the retry is told the outcome is unknown, it does not execute')
  })

  t.test('a stale owner (lease lost, key re-claimed) cannot complete, release or mark the new claim', async (t) => {
    const c = core({ leaseMs: 200 })
    let lost = 0
    c.observer = { ...c.observer, leaseLost: () => { lost++ } }
    const key = fresh()
    const stale = proceed(t, await c.begin('s', key, 'fp', true))
    stale.stopRenewal() // the owner stalls: no heartbeat
    await pass(400)
    const fresh2 = proceed(t, await c.begin('s', key, 'fp', true))
    t.notOk(await c.complete(stale, response('stale')), 'stale completion rejected')
    t.equal(lost, 1, 'counted as a lost lease')
    t.notOk(await store.markUnknown(stale.id, stale.token, 1000), 'stale markUnknown rejected')
    t.notOk(await store.release(stale.id, stale.token), 'stale release rejected')
    t.notOk(await store.renew(stale.id, stale.token, 1000, 1000), 'stale renew rejected')
    t.ok(await c.complete(fresh2, response('fresh')))
    const r = await c.begin('s', key, 'fp')
    t.equal(r.kind === 'replay' && r.response.body.toString(), 'fresh', 'the new owner\'s result stands')
    t.notOk(await c.complete(stale, response('stale')), 'and cannot be overwritten afterwards')
  })

  t.test('a stalled owner whose key went unknown (nobody re-claimed) may still record its answer', async (t) => {
    const c = core({ leaseMs: 200 })
    const key = fresh()
    const stalled = proceed(t, await c.begin('s', key, 'fp'))
    stalled.stopRenewal()
    await pass(400)
    t.equal((await c.begin('s', key, 'fp')).kind, 'unknown')
    t.ok(await c.complete(stalled, response('late but true')), 'the late answer is the truth: stored')
    const r = await c.begin('s', key, 'fp')
    t.equal(r.kind === 'replay' && r.response.body.toString(), 'late but true')
  })

  t.test('a response over maxResponseBytes leaves a too-large tombstone, never a second execution', async (t) => {
    const c = core({ maxResponseBytes: 10 })
    const key = fresh()
    const claim = proceed(t, await c.begin('s', key, 'fp'))
    t.ok(await c.complete(claim, response('x'.repeat(11), 200)))
    const r = await c.begin('s', key, 'fp')
    t.same(r, { kind: 'too-large', status: 200 })
    t.equal((await c.begin('s', key, 'other')).kind, 'mismatch')
  })

  t.test('50 concurrent begins: exactly one claims', async (t) => {
    const c = core()
    const key = fresh()
    const results = await Promise.all(Array.from({ length: 50 }, () => c.begin('s', key, 'fp')))
    const kinds = results.map((r) => r.kind)
    t.equal(kinds.filter((k) => k === 'proceed').length, 1)
    t.equal(kinds.filter((k) => k === 'in-flight').length, 49)
    for (const r of results) if (r.kind === 'proceed') await c.release(r.claim)
  })

  t.test('onConcurrent wait: a duplicate gets the original\'s response once it completes', async (t) => {
    const c = core({ waitMs: 5000 })
    const key = fresh()
    const claim = proceed(t, await c.begin('s', key, 'fp'))
    const waiting = c.begin('s', key, 'fp')
    await sleep(300)
    t.ok(await c.complete(claim, response('waited')))
    const r = await waiting
    t.equal(r.kind === 'replay' && r.response.body.toString(), 'waited')
  })

  t.test('onConcurrent wait is bounded: still in flight after the wait is in-flight', async (t) => {
    const c = core({ waitMs: 300 })
    const key = fresh()
    const claim = proceed(t, await c.begin('s', key, 'fp'))
    const started = Date.now()
    const r = await c.begin('s', key, 'fp')
    t.equal(r.kind, 'in-flight')
    t.ok(Date.now() - started < 3000, 'bounded')
    await c.release(claim)
  })
}
