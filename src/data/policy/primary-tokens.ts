/**
 * @module data/policy/primary-tokens
 * `local` rate limits across the proxy processes of one instance: the buckets are the primary's
 * (control/process/token-lease.ts, over data/policy/token-bucket SharedBuckets), and each process
 * leases tokens from it over IPC as it would from Redis for a `global` limit (data/policy/leases.ts):
 * one message per lease, never one per request. Chosen over per-process shares (rate / N each), which
 * refuse a client whose keep-alive connection lands on one process at 1/N of its limit.
 */
import type { TakeTokens } from '../../shared/redis/rate-limit-script.js'
import type { TakeAnswer, TakeRequest } from '../../shared/process/protocol.js'

/** the proxy process's side: leases asked of the primary, answered by id */
export class PrimaryTokens {
  private readonly pending = new Map<number, (r: readonly [number, number]) => void>()
  private next = 1

  constructor (private readonly send: (m: TakeRequest) => boolean) {}

  readonly take: TakeTokens = (limit, key, capacity, perMs, want) => new Promise((resolve, reject) => {
    const id = this.next++
    if (!this.send({ type: 'take', id, limit, key, capacity, perMs, want })) {
      reject(new Error('the primary is gone'))
      return
    }
    this.pending.set(id, resolve)
  })

  answered (m: TakeAnswer): void {
    const resolve = this.pending.get(m.id)
    if (resolve === undefined) return
    this.pending.delete(m.id)
    resolve([m.got, m.waitMs])
  }
}
