/**
 * The idempotency record's answer handler (proxy/idempotency-gate's KeyedRequest) wraps the client's
 * (engine/answer-handler): whatever the chunks, the client gets exactly the bytes the upstream sent, in
 * order, all but the last before the record is written and the last (with the end) only after; the
 * record holds the same bytes (or only the status, past maxResponseBytes).
 */
import t from 'tap'
import fc from 'fast-check'
import { KeyedRequest } from '../../src/data/idempotency/gate.js'
import type { AnswerHandler, AnswerTarget } from '../../src/data/engine/answer-handler.js'
import type { Claim, IdempotencyCore } from '../../src/shared/idempotency/core.js'
import type { StoredResponse } from '../../src/shared/idempotency/store.js'
import type { Logger } from '../../src/shared/log.js'

interface Seen { data: Buffer[], completes: number, ends: number, headers: number }

function recorder (seen: Seen): AnswerHandler {
  return {
    onRequestEnd () {},
    onHeaders () { seen.headers++ },
    onData (_ex, chunk) { seen.data.push(chunk); return true },
    onComplete () { seen.completes++ },
    onEnd () { seen.ends++ },
  }
}

t.test('the client gets every byte in order; the last only once the record is written', async (t) => {
  await fc.assert(fc.asyncProperty(
    fc.array(fc.uint8Array({ minLength: 1, maxLength: 64 }), { minLength: 0, maxLength: 12 }),
    fc.integer({ min: 0, max: 400 }),
    async (parts, maxResponseBytes) => {
      const chunks = parts.map((p) => Buffer.from(p))
      const sent = Buffer.concat(chunks)
      let stored: StoredResponse | null = null
      let tooLarge = -1
      let write!: () => void
      const written = new Promise<void>((resolve) => { write = resolve })
      const core = {
        settings: { maxResponseBytes },
        complete: async (_c: Claim, r: StoredResponse) => { stored = r; await written; return true },
        completeTooLarge: async (_c: Claim, status: number) => { tooLarge = status; await written; return true },
        release: async () => true,
        markUnknown: async () => true,
      } as unknown as IdempotencyCore
      const seen: Seen = { data: [], completes: 0, ends: 0, headers: 0 }
      const k = new KeyedRequest(core, { error () {} } as unknown as Logger, recorder(seen))
      k.claim = {} as Claim
      let left = 0
      const ex: AnswerTarget = { finished: false, conn: { socket: { cork () {}, uncork () {} } }, leaveDeadline () { left++ }, sendBody: () => true, endAnswer () {} }
      k.onHeaders(ex, 201, ['content-type', 'application/json'])
      for (const c of chunks) t.equal(k.onData(ex, c), true)
      k.onComplete(ex)
      // the record is being written: everything but the last chunk is out, and no end
      t.same(Buffer.concat(seen.data), chunks.length === 0 ? Buffer.alloc(0) : Buffer.concat(chunks.slice(0, -1)))
      t.equal(seen.completes, 0)
      t.equal(left, 1, 'out of the request deadline while the record is written')
      write()
      await written
      await new Promise((resolve) => setImmediate(resolve))
      t.same(Buffer.concat(seen.data), sent, 'the client got exactly what the upstream sent')
      t.equal(seen.completes, 1)
      t.equal(seen.headers, 1)
      if (sent.length > maxResponseBytes) t.equal(tooLarge, 201, 'too large: only the status is recorded')
      else t.same((stored as StoredResponse | null)?.body, sent, 'the record holds the same bytes')
      k.onEnd(ex, true)
      t.equal(seen.ends, 1, 'the end reaches the wrapped handler')
    }), { numRuns: 100 })
})

t.test('an exchange that ended before the record was written sends nothing more', async (t) => {
  let write!: () => void
  const written = new Promise<void>((resolve) => { write = resolve })
  const core = { settings: { maxResponseBytes: 100 }, complete: async () => { await written; return true } } as unknown as IdempotencyCore
  const seen: Seen = { data: [], completes: 0, ends: 0, headers: 0 }
  const k = new KeyedRequest(core, { error () {} } as unknown as Logger, recorder(seen))
  k.claim = {} as Claim
  const ex = { finished: false, conn: { socket: { cork () {}, uncork () {} } }, leaveDeadline () {}, sendBody: () => true, endAnswer () {} }
  k.onData(ex, Buffer.from('a'))
  k.onData(ex, Buffer.from('b'))
  k.onComplete(ex)
  ex.finished = true
  write()
  await new Promise((resolve) => setImmediate(resolve))
  t.same(Buffer.concat(seen.data).toString(), 'a')
  t.equal(seen.completes, 0)
})
