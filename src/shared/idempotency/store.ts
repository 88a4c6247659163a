/**
 * @module idempotency/store
 * Where idempotency records live. One record per (scope, key), kept `ttlMs` from its last change (an
 * in-flight one `ttlMs` past its lease, which every renewal moves), in
 * one of four states:
 *  - in-flight: claimed by an owner token with a lease (a deadline in the record, renewed while the
 *    owner lives), the fingerprint, a fencing counter and when the claim started;
 *  - completed: the stored response;
 *  - unknown: the request may have executed and nobody knows the answer: the upstream died after the
 *    request was sent, or the owner's lease ended without a result (owner killed, store frozen). A key
 *    is never free again because an owner disappeared: that would execute it a second time, silently;
 *  - too-large: the response was bigger than the store accepts; a tombstone.
 * Every write names the owner token and is a compare-and-set on it, so a stale owner can never
 * overwrite a newer claim or a result. A stale owner may still store its answer over `unknown` while
 * nobody re-claimed the key: that answer is the truth the unknown state stood for.
 */

export interface StoredResponse {
  readonly status: number
  /** flat [name, value, …] list of the end-to-end headers to replay */
  readonly headers: readonly string[]
  readonly body: Buffer
}

export type StoreBegin =
  /** `fence` rises with every claim of the record: the upstream can refuse an older one */
  | { readonly kind: 'claimed', readonly fence: number }
  | { readonly kind: 'completed', readonly response: StoredResponse }
  /** `remainingMs` of the lease, `elapsedMs` since the owner claimed */
  | { readonly kind: 'in-flight', readonly remainingMs: number, readonly elapsedMs: number }
  /** `remainingMs` until the record expires */
  | { readonly kind: 'unknown', readonly remainingMs: number }
  | { readonly kind: 'too-large', readonly status: number }
  | { readonly kind: 'mismatch' }

export interface IdempotencyStore {
  /**
   * Claim `id` for `token` with a lease (the record kept `ttlMs` past the lease), or tell what the record holds.
   * Atomic. An in-flight record whose lease ended becomes unknown here. With `reclaim` (the upstream
   * dedupes on the record id) an unknown record is claimed again under a new token and fence.
   */
  begin (id: string, fingerprint: string, token: string, leaseMs: number, ttlMs: number, reclaim: boolean): Promise<StoreBegin>
  /**
   * Extend the lease of an in-flight claim, and the record's retention to `ttlMs` past the new lease
   * end; false when `token` no longer owns it.
   */
  renew (id: string, token: string, leaseMs: number, ttlMs: number): Promise<boolean>
  /** Store the response (from in-flight or unknown); false when `token` no longer owns the record. */
  complete (id: string, token: string, response: StoredResponse, ttlMs: number): Promise<boolean>
  /** Store the too-large tombstone instead of a response. */
  tooLarge (id: string, token: string, status: number, ttlMs: number): Promise<boolean>
  /** The outcome is unknown: the record says so for `ttlMs` from now (the owner may still complete it). */
  markUnknown (id: string, token: string, ttlMs: number): Promise<boolean>
  /** Forget an in-flight claim at once (nothing reached an upstream). */
  release (id: string, token: string): Promise<boolean>
  /** Resolves when the record leaves in-flight, or after `ms`. Never rejects. */
  waitSettled (id: string, ms: number): Promise<void>
  close (): Promise<void>
}

/** The state tier could not be asked (down, timed out, not ready): the caller answers 503. */
export class StoreUnavailableError extends Error {
  readonly code = 'CLAYLB_STATE_UNAVAILABLE'
  constructor (message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'StoreUnavailableError'
  }
}

export function encodeHeaders (headers: readonly string[]): string {
  return JSON.stringify(headers)
}

export function decodeHeaders (text: string): string[] {
  const v: unknown = JSON.parse(text)
  return Array.isArray(v) ? v.map(String) : []
}
