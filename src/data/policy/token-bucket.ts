/**
 * @module data/policy/token-bucket
 * Token buckets in memory, one per key: `capacity` tokens (burst + 1), refilled at `perMs`. Used for
 * a `local` limit: directly by a single process, and by the primary for its proxy processes (they
 * lease from it over IPC, data/policy/leases.ts). The same arithmetic as the Redis script
 * (shared/redis/rate-limit-script.ts), so `local` and `global` count alike.
 */

interface Bucket { tokens: number, at: number }

export class TokenBuckets {
  private readonly map = new Map<string, Bucket>()

  constructor (readonly capacity: number, readonly perMs: number) {}

  /** after a take: ms until the rest of what was wanted is there (0: all was taken) */
  waitMs = 0

  /** take up to `want` whole tokens: how many were taken (`waitMs` says when the rest will be there; no allocation) */
  take (key: string, want: number, now: number): number {
    let b = this.map.get(key)
    if (b === undefined) this.map.set(key, b = { tokens: this.capacity, at: now })
    else if (now > b.at) {
      b.tokens = Math.min(this.capacity, b.tokens + (now - b.at) * this.perMs)
      b.at = now
    }
    const got = Math.min(want, Math.floor(b.tokens))
    b.tokens -= got
    this.waitMs = got < want ? Math.max(1, Math.ceil((want - got - b.tokens) / this.perMs)) : 0
    return got
  }

  /** forget the keys whose bucket has filled again (they are as good as new) */
  sweep (now: number): void {
    for (const [k, b] of this.map) if (b.tokens + (now - b.at) * this.perMs >= this.capacity) this.map.delete(k)
  }

  get size (): number {
    return this.map.size
  }
}

/**
 * The buckets of every `local` limit, by name and settings: the primary's, answering its proxy
 * processes' lease requests. A limit whose rate or burst changed gets new buckets.
 */
export class SharedBuckets {
  private readonly byLimit = new Map<string, TokenBuckets>()
  private readonly timer: NodeJS.Timeout

  constructor () {
    this.timer = setInterval(() => { const now = Date.now(); for (const b of this.byLimit.values()) b.sweep(now) }, 10_000)
    this.timer.unref()
  }

  take (name: string, capacity: number, perMs: number, key: string, want: number): [number, number] {
    const id = `${name}\n${capacity}\n${perMs}`
    let b = this.byLimit.get(id)
    if (b === undefined) this.byLimit.set(id, b = new TokenBuckets(capacity, perMs))
    const got = b.take(key, want, Date.now())
    return [got, b.waitMs]
  }

  close (): void {
    clearInterval(this.timer)
  }
}
