/**
 * @module idempotency/memory-store
 * The store for a single process (one Node server using the middleware without Redis). Same semantics
 * as the Redis store, the same conformance suite; expiry uses this process's clock.
 */
import { EventEmitter } from 'node:events'
import type { IdempotencyStore, StoreBegin, StoredResponse } from './store.js'
import { systemClock, type Clock } from './clock.js'

interface Rec {
  st: 'i' | 'c' | 'u' | 't'
  fp: string
  tok: string | undefined
  fence: number
  /** in-flight: when the owner's lease ends, and when it claimed */
  leaseUntil: number
  t0: number
  expiresAt: number
  response?: StoredResponse
  status?: number
}

const SWEEP_MS = 60_000

export class MemoryStore implements IdempotencyStore {
  private readonly records = new Map<string, Rec>()
  private readonly settled = new EventEmitter()
  private readonly sweeper: NodeJS.Timeout

  /** @param clock what expiry and leases are measured on (a test's own, to cross a TTL without waiting) */
  constructor (private readonly clock: Clock = systemClock) {
    this.settled.setMaxListeners(0)
    this.sweeper = setInterval(() => this.sweep(), SWEEP_MS).unref()
  }

  private live (id: string): Rec | undefined {
    const r = this.records.get(id)
    if (r === undefined) return undefined
    if (r.expiresAt <= this.clock.now()) {
      this.records.delete(id)
      return undefined
    }
    return r
  }

  private owned (id: string, token: string): Rec | undefined {
    const r = this.live(id)
    return r !== undefined && r.tok === token ? r : undefined
  }

  async begin (id: string, fingerprint: string, token: string, leaseMs: number, ttlMs: number, reclaim: boolean): Promise<StoreBegin> {
    const now = this.clock.now()
    const r = this.live(id)
    if (r === undefined) {
      this.records.set(id, { st: 'i', fp: fingerprint, tok: token, fence: 1, leaseUntil: now + leaseMs, t0: now, expiresAt: now + leaseMs + ttlMs })
      return { kind: 'claimed', fence: 1 }
    }
    if (r.fp !== fingerprint) return { kind: 'mismatch' }
    switch (r.st) {
      case 'c': return { kind: 'completed', response: r.response! }
      case 't': return { kind: 'too-large', status: r.status! }
      case 'i':
        if (r.leaseUntil > now) return { kind: 'in-flight', remainingMs: r.leaseUntil - now, elapsedMs: now - r.t0 }
        // the owner's lease ended without a result: it may have executed; never free, unknown
        r.st = 'u'
        r.expiresAt = now + ttlMs
        this.settled.emit(id)
    }
    if (!reclaim) return { kind: 'unknown', remainingMs: r.expiresAt - now }
    r.st = 'i'
    r.tok = token
    r.fence++
    r.leaseUntil = now + leaseMs
    r.t0 = now
    r.expiresAt = now + leaseMs + ttlMs
    return { kind: 'claimed', fence: r.fence }
  }

  async renew (id: string, token: string, leaseMs: number, ttlMs: number): Promise<boolean> {
    const r = this.owned(id, token)
    if (r === undefined || r.st !== 'i') return false
    r.leaseUntil = this.clock.now() + leaseMs
    // the retention moves with the lease, as in the Redis store
    r.expiresAt = r.leaseUntil + ttlMs
    return true
  }

  async complete (id: string, token: string, response: StoredResponse, ttlMs: number): Promise<boolean> {
    return this.finish(id, token, ttlMs, (r) => { r.st = 'c'; r.response = response; r.status = response.status })
  }

  async tooLarge (id: string, token: string, status: number, ttlMs: number): Promise<boolean> {
    return this.finish(id, token, ttlMs, (r) => { r.st = 't'; r.status = status })
  }

  private finish (id: string, token: string, ttlMs: number, set: (r: Rec) => void): boolean {
    const r = this.owned(id, token)
    if (r === undefined || (r.st !== 'i' && r.st !== 'u')) return false
    set(r)
    r.tok = undefined
    r.expiresAt = this.clock.now() + ttlMs
    this.settled.emit(id)
    return true
  }

  async markUnknown (id: string, token: string, ttlMs: number): Promise<boolean> {
    const r = this.owned(id, token)
    if (r === undefined || r.st !== 'i') return false
    r.st = 'u'
    r.expiresAt = this.clock.now() + ttlMs
    this.settled.emit(id)
    return true
  }

  async release (id: string, token: string): Promise<boolean> {
    const r = this.owned(id, token)
    if (r === undefined || r.st !== 'i') return false
    this.records.delete(id)
    this.settled.emit(id)
    return true
  }

  waitSettled (id: string, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => { clearTimeout(t); this.settled.off(id, done); resolve() }
      const t = setTimeout(done, ms)
      this.settled.on(id, done)
    })
  }

  /** records held now (tests, and a sanity bound for operators) */
  get size (): number { return this.records.size }

  private sweep (): void {
    const now = this.clock.now()
    for (const [id, r] of this.records) if (r.expiresAt <= now) this.records.delete(id)
  }

  async close (): Promise<void> {
    clearInterval(this.sweeper)
    this.records.clear()
  }
}
