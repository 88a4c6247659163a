/**
 * @module idempotency/core
 * The transport-free idempotency layer: `begin` a keyed request, then `complete`, `release` or
 * `markUnknown` it with the owner's claim. The claim's lease is renewed while the request is alive.
 * The proxy and the Node middleware are thin adapters around this.
 */
import { createHash, randomBytes } from 'node:crypto'
import { StoreUnavailableError, type IdempotencyStore, type StoreBegin, type StoredResponse } from './store.js'
import { IDEMPOTENCY_DEFAULTS } from '../defaults.js'
import { systemClock, type Clock, type ClockTimer } from './clock.js'

export interface IdempotencySettings {
  /** the in-flight lease (`lockSeconds`), renewed every third of it while the request is alive */
  leaseMs: number
  /**
   * how long a completed record replays (`ttlSeconds`); an in-flight record is kept this long past
   * its lease, which every renewal moves
   */
  ttlMs: number
  /** the largest response body stored for replay (`maxResponseBytes`) */
  maxResponseBytes: number
  /** `onConcurrent: wait`: how long a duplicate waits for the original (0 = answer 409 at once) */
  waitMs: number
  /**
   * Answers that say "not processed, come back later" (`releaseStatuses`, default 429 and 503): the
   * claim is released instead of stored, so the retry the answer asks for executes instead of
   * replaying the refusal for `ttlMs`.
   */
  releaseStatuses?: ReadonlySet<number>
}

export const DEFAULT_RELEASE_STATUSES: ReadonlySet<number> = new Set(IDEMPOTENCY_DEFAULTS.releaseStatuses)

/** how often a result the store could not take is offered again */
const RESTORE_EVERY_MS = 200
/**
 * How long it is offered at most. The record stays (in flight, then unknown) for `ttlMs` whatever
 * happens, so offering past the lease is safe: every write is fenced by the owner token, and the
 * answer that lands turns an unknown outcome into the known one.
 */
const RESTORE_FOR_MS = 300_000

/** Counters for metrics; every hook defaults to a no-op. */
export interface IdempotencyObserver {
  /** a claim was granted: the request executes */
  execution (): void
  replay (): void
  /** a 400, 409 or 422 answered by the layer; `type` is the problem slug */
  rejected (status: number, type: string): void
  /** an owner found its claim gone when renewing or completing */
  leaseLost (): void
  unknownOutcome (): void
  /** the store was unreachable: answered 503 instead of executing unprotected */
  failClosed (): void
}

export const noopObserver: IdempotencyObserver = {
  execution () {}, replay () {}, rejected () {}, leaseLost () {}, unknownOutcome () {}, failClosed () {},
}

/** what the store said, with a claim the caller owns instead of `claimed` and `replay` for `completed` */
export type BeginOutcome =
  | { readonly kind: 'proceed', readonly claim: Claim }
  | { readonly kind: 'replay', readonly response: StoredResponse }
  | Exclude<StoreBegin, { kind: 'claimed' } | { kind: 'completed' }>

/** The owner's handle on an in-flight record: its token and the lease renewal timer. */
export class Claim {
  private timer: ClockTimer | undefined
  private clock: Clock = systemClock
  /** set once the claim was completed, released or marked unknown */
  settled = false
  /** when the lease ends at the latest, as far as this process knows (moved by every renewal) */
  leaseUntil: number

  /**
   * @param id the record id (the scoped key's hash): what an upstream that dedupes stores
   * @param fence rises with every claim of the record, so an upstream can refuse an older owner
   * @param sentAt when the claim was sent to the store: the lease runs from then at the latest
   */
  constructor (readonly id: string, readonly token: string, leaseMs: number, readonly fence = 1, sentAt = Date.now()) {
    this.leaseUntil = sentAt + leaseMs
  }

  /** @internal */
  startRenewal (core: IdempotencyCore): void {
    const every = Math.max(50, Math.floor(core.settings.leaseMs / 3))
    this.clock = core.clock
    this.timer = this.clock.setInterval(() => {
      const sent = this.clock.now()
      // the record's retention moves with the lease: it outlives a request that runs past ttlMs
      core.store.renew(this.id, this.token, core.settings.leaseMs, core.settings.ttlMs).then((owned) => {
        if (owned) this.leaseUntil = sent + core.settings.leaseMs
        if (!owned && !this.settled) {
          this.stopRenewal()
          core.observer.leaseLost()
        }
      }, () => { /* transient: the next tick tries again while the lease lasts */ })
    }, every)
    this.timer.unref()
  }

  /** @internal */
  stopRenewal (): void {
    if (this.timer !== undefined) this.clock.clearInterval(this.timer)
    this.timer = undefined
  }
}

/**
 * The scope of a key: the credential (`idempotency.scope`) alone. Not the method or the route: a key
 * is one operation of that client, so the same key on another route or method is a mismatch (422),
 * never a second execution. (Before, the scope held the method and the route as configured, so one
 * key ran once per route and per spelling of a route pattern.)
 */
export function scopeOf (credential: string): string {
  return credential
}

const SLICE_MS = 1000

/**
 * Owner tokens only have to be unique, never secret: a token stays inside the store (a compare-and-set
 * on the record's owner) and never reaches a client or an upstream (they see the record id and the
 * fence). So a token is a random prefix drawn once per process (96 bits: two processes, or one
 * restarted, never share it) and a counter, instead of 16 random bytes per claim.
 */
const TOKEN_PREFIX = randomBytes(12).toString('base64url')
let tokens = 0

/** the next owner token of this process */
export function nextToken (): string {
  return TOKEN_PREFIX + (tokens++).toString(36)
}

export class IdempotencyCore {
  private readonly releaseStatuses: ReadonlySet<number>

  constructor (
    readonly store: IdempotencyStore,
    readonly settings: IdempotencySettings,
    public observer: IdempotencyObserver = noopObserver,
    /** leases and their renewals run on it (a test's own clock crosses a lease without waiting) */
    readonly clock: Clock = systemClock,
  ) {
    this.releaseStatuses = settings.releaseStatuses ?? DEFAULT_RELEASE_STATUSES
  }

  /** The record id: neither the client's key nor its credential ever reaches the store in clear. */
  recordId (scope: string, key: string): string {
    return createHash('sha256').update(scope).update('\u0000').update(key).digest('hex')
  }

  /**
   * Claim (scope, key) or learn what it holds. Throws StoreUnavailableError when the store cannot be
   * asked. With `settings.waitMs` > 0 an in-flight record is waited for (bounded) before answering.
   * `reclaim`: the upstream dedupes on the record id, so an unknown outcome is claimed again and the
   * request re-forwarded (the upstream answers with what it did the first time) instead of refused.
   */
  async begin (scope: string, key: string, fingerprint: string, reclaim = false): Promise<BeginOutcome> {
    const id = this.recordId(scope, key)
    const deadline = this.settings.waitMs > 0 ? Date.now() + this.settings.waitMs : 0
    for (;;) {
      const token = nextToken()
      const sentAt = this.clock.now()
      let r
      try {
        r = await this.store.begin(id, fingerprint, token, this.settings.leaseMs, this.settings.ttlMs, reclaim)
      } catch (err) {
        // the claim may have landed after all (a reply lost or late): nothing executed, so free it,
        // or it would turn into an unknown outcome when its lease ends
        this.releaseLater(id, token)
        throw err
      }
      switch (r.kind) {
        case 'claimed': {
          const claim = new Claim(id, token, this.settings.leaseMs, r.fence, sentAt)
          if (claim.leaseUntil <= this.clock.now()) {
            // the reply came after the whole lease (this process was stopped, or the store that
            // slow): the record may already say unknown, or be claimed again; nothing executed yet
            this.releaseLater(id, token)
            throw new StoreUnavailableError('idempotency store: the claim arrived after its lease ended')
          }
          claim.startRenewal(this)
          this.observer.execution()
          return { kind: 'proceed', claim }
        }
        case 'completed':
          this.observer.replay()
          return { kind: 'replay', response: r.response }
        case 'in-flight': {
          const left = deadline - Date.now()
          if (left > 0) {
            // a missed notification costs at most one slice: the record is read again after it
            await this.store.waitSettled(id, Math.min(left, Math.max(r.remainingMs, 10), SLICE_MS))
            continue
          }
          return r
        }
        default:
          return r
      }
    }
  }

  /**
   * Store the response, or release the claim when its status is one of `releaseStatuses`. False when
   * the claim was lost (the lease ran out and someone else owns it). Throws StoreUnavailableError when
   * the store cannot take it now; it is offered again in the background while the lease lasts.
   */
  async complete (claim: Claim, response: StoredResponse): Promise<boolean> {
    if (this.releaseStatuses.has(response.status)) return this.release(claim)
    if (response.body.length > this.settings.maxResponseBytes) return this.completeTooLarge(claim, response.status)
    return this.settle(claim, () => this.store.complete(claim.id, claim.token, response, this.settings.ttlMs))
  }

  /** The response was bigger than `maxResponseBytes`: keep a tombstone so retries never execute again. */
  async completeTooLarge (claim: Claim, status: number): Promise<boolean> {
    if (this.releaseStatuses.has(status)) return this.release(claim)
    return this.settle(claim, () => this.store.tooLarge(claim.id, claim.token, status, this.settings.ttlMs))
  }

  /**
   * The request executed, so its result must reach the store, or a retry after a short outage would
   * execute it again. Every store write is a compare-and-set on the owner token, so offering it again
   * until the lease ends can never overwrite a newer claim.
   */
  private async settle (claim: Claim, write: () => Promise<boolean>): Promise<boolean> {
    claim.stopRenewal()
    let ok
    try {
      ok = await write()
    } catch (err) {
      this.offerAgain(claim, write)
      throw err
    }
    claim.settled = true
    if (!ok) this.observer.leaseLost()
    return ok
  }

  private offerAgain (claim: Claim, write: () => Promise<boolean>): void {
    const until = Date.now() + Math.min(RESTORE_FOR_MS, this.settings.ttlMs)
    const retry = (): void => {
      if (claim.settled) return
      if (Date.now() > until) {
        // never recorded: the record says unknown (its lease ended without a result), never free
        this.observer.unknownOutcome()
        return
      }
      write().then((ok) => {
        claim.settled = true
        if (!ok) this.observer.leaseLost()
      }, () => setTimeout(retry, RESTORE_EVERY_MS).unref())
    }
    setTimeout(retry, RESTORE_EVERY_MS).unref()
  }

  /** Release a claim that may or may not exist, retrying while its lease could still be running. */
  private releaseLater (id: string, token: string): void {
    const until = Date.now() + this.settings.leaseMs
    const attempt = (): void => {
      this.store.release(id, token).catch(() => {
        if (Date.now() < until) setTimeout(attempt, RESTORE_EVERY_MS).unref()
      })
    }
    attempt()
  }

  /** Nothing reached an upstream (or the handler never started): forget the claim at once. */
  async release (claim: Claim): Promise<boolean> {
    claim.stopRenewal()
    claim.settled = true
    return this.store.release(claim.id, claim.token)
  }

  /**
   * The request was sent and no answer came back: the record says `unknown` for `ttlMs` (a route whose
   * upstream dedupes re-claims it on the next retry).
   */
  async markUnknown (claim: Claim): Promise<boolean> {
    claim.stopRenewal()
    this.observer.unknownOutcome()
    // not settled: the owner may still complete from this state (the middleware's late handler)
    return this.store.markUnknown(claim.id, claim.token, this.settings.ttlMs)
  }
}
