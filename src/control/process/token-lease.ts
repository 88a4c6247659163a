/**
 * @module control/process/token-lease
 * The primary's side of `local` rate limits over several proxy processes: it holds the buckets and
 * answers each process's lease (data/policy/primary-tokens.ts).
 */
import type { SharedBuckets } from '../../data/policy/token-bucket.js'
import type { TakeAnswer, TakeRequest } from '../../shared/process/protocol.js'

export function answerTake (buckets: SharedBuckets, m: TakeRequest): TakeAnswer {
  const [got, waitMs] = buckets.take(m.limit, m.capacity, m.perMs, m.key, m.want)
  return { type: 'taken', id: m.id, got, waitMs }
}
