/**
 * @module data/policy/leases
 * Where a rate limit's tokens come from, per process. A `LimitStore` answers a request at once
 * (admitted, or refused with the ms until a token) or later (pending: it calls the waiter back).
 *
 * - `DirectStore`: `local` scope in a single process: the buckets are here, always at once.
 * - `LeaseStore`: the buckets are elsewhere — in Redis (`global`), or in the primary (`local` with
 *   several proxy processes, over IPC). Each process takes tokens in small allotments (leases) and
 *   spends them locally, so a request costs a round trip only when its key has none left. A key's
 *   lease starts at 1 token and doubles while each one is spent within REFILL_FAST_MS, up to
 *   `maxLease` (50 ms of the limit's whole rate); the next one is asked for when half is left, so a
 *   busy key never waits. Tokens not spent within LEASE_TTL_MS are dropped (their traffic stopped):
 *   so a process never spends more than Redis granted (no over-admission, outages aside), and what a
 *   process holds unspent is at most `maxLease` per key, the bound on under-admission.
 */
import type { TakeTokens } from '../../shared/redis/rate-limit-script.js'
import { TokenBuckets } from './token-bucket.js'

/** the request waiting for a decision: waitMs 0 admitted, > 0 refused (ms until a token) */
export interface LimitWaiter {
  limitDecided (waitMs: number): void
}

/** take: 0 admitted, > 0 refused (ms until a token), PENDING (the waiter is called back) */
export const PENDING = -1

export interface LimitStore {
  take (key: string, waiter: LimitWaiter): number
  close (): void
}

/** what a store needs to know of its limit */
export interface BucketShape {
  readonly name: string
  /** burst + 1 */
  readonly capacity: number
  /** tokens per ms */
  readonly perMs: number
}

export class DirectStore implements LimitStore {
  private readonly buckets: TokenBuckets
  private readonly timer: NodeJS.Timeout

  constructor (shape: BucketShape) {
    this.buckets = new TokenBuckets(shape.capacity, shape.perMs)
    this.timer = setInterval(() => this.buckets.sweep(Date.now()), SWEEP_MS)
    this.timer.unref()
  }

  take (key: string, _waiter: LimitWaiter): number {
    const b = this.buckets
    b.take(key, 1, Date.now())
    return b.waitMs
  }

  close (): void {
    clearInterval(this.timer)
  }
}

const SWEEP_MS = 10_000
/** tokens held longer than this are dropped */
export const LEASE_TTL_MS = 1000
/** a lease spent within this: the next one is twice as large */
const REFILL_FAST_MS = 100
/** after a failed take (the store unreachable), onStateDown decides alone for this long */
const DOWN_MS = 1000
/** the share of the limit's rate one lease may hold at most */
const MAX_LEASE_MS = 50

class KeyLease {
  tokens = 0
  expires = 0
  size = 1
  /** when the lease now held arrived */
  grantedAt = 0
  pending = false
  waiters: LimitWaiter[] = []
  /** the store said empty: refused without asking until then */
  refusedUntil = 0
  /** the store could not be reached: onStateDown decides until then */
  downUntil = 0
}

export class LeaseStore implements LimitStore {
  private readonly keys = new Map<string, KeyLease>()
  private readonly maxLease: number
  private readonly timer: NodeJS.Timeout
  /**
   * `takes`: counts the round trips to the store (claylb_rate_limit_store_takes_total, the README's figures)
   */
  constructor (private readonly shape: BucketShape, private readonly backend: TakeTokens, private readonly onDown: 'allow' | 'deny',
    private readonly takes: { inc (): void }, private readonly onError?: (err: unknown) => void) {
    this.maxLease = Math.max(1, Math.min(shape.capacity, Math.ceil(shape.perMs * MAX_LEASE_MS)))
    this.timer = setInterval(() => this.sweep(Date.now()), SWEEP_MS)
    this.timer.unref()
  }

  take (key: string, waiter: LimitWaiter): number {
    const now = Date.now()
    let k = this.keys.get(key)
    if (k === undefined) this.keys.set(key, k = new KeyLease())
    if (k.tokens > 0 && now < k.expires) {
      k.tokens--
      // half spent: the next lease is asked for now, so this key's next requests find it here
      if (k.size > 1 && !k.pending && k.tokens <= k.size >> 1) this.refill(key, k, now)
      return 0
    }
    if (k.downUntil > now) return this.onDown === 'allow' ? 0 : k.downUntil - now
    if (k.refusedUntil > now && !k.pending) return k.refusedUntil - now
    k.waiters.push(waiter)
    if (!k.pending) this.refill(key, k, now)
    return PENDING
  }

  private refill (key: string, k: KeyLease, now: number): void {
    k.pending = true
    // sized by how fast the last lease went
    if (k.grantedAt !== 0) {
      const took = now - k.grantedAt
      if (took <= REFILL_FAST_MS) k.size = Math.min(this.maxLease, k.size * 2)
      else if (took > LEASE_TTL_MS) k.size = Math.max(1, k.size >> 1)
    }
    // never more than a lease's worth at once: more waiters are served by the next lease
    const want = Math.min(Math.max(k.size, k.waiters.length), this.maxLease)
    this.takes.inc()
    this.backend(this.shape.name, key, this.shape.capacity, this.shape.perMs, want).then(
      ([got, waitMs]) => this.granted(key, k, got, want, waitMs),
      (err: unknown) => this.failed(k, err))
  }

  private granted (key: string, k: KeyLease, got: number, want: number, waitMs: number): void {
    const now = Date.now()
    k.pending = false
    k.downUntil = 0
    // what the old lease has left is still good: kept with the new one
    k.tokens = (now < k.expires ? k.tokens : 0) + got
    k.expires = now + LEASE_TTL_MS
    k.grantedAt = now
    if (got < want) k.refusedUntil = now + waitMs
    const w = k.waiters
    let i = 0
    for (; i < w.length && k.tokens > 0; i++) {
      k.tokens--
      w[i]!.limitDecided(0)
    }
    if (i === w.length) {
      k.waiters = []
      return
    }
    if (got < want) {
      // the bucket is empty: everyone still waiting is refused
      k.waiters = []
      for (; i < w.length; i++) w[i]!.limitDecided(waitMs)
      return
    }
    // more waited than this lease held, and the bucket had it all: ask again for them
    k.waiters = w.slice(i)
    this.refill(key, k, now)
  }

  private failed (k: KeyLease, err: unknown): void {
    k.pending = false
    k.downUntil = Date.now() + DOWN_MS
    this.onError?.(err)
    const w = k.waiters
    k.waiters = []
    for (const x of w) x.limitDecided(this.onDown === 'allow' ? 0 : DOWN_MS)
  }

  private sweep (now: number): void {
    for (const [key, k] of this.keys) {
      if (!k.pending && k.waiters.length === 0 && now >= k.expires && now >= k.refusedUntil && now >= k.downUntil) this.keys.delete(key)
    }
  }

  close (): void {
    clearInterval(this.timer)
  }
}
