/**
 * @module idempotency/store
 * Where idempotency records live. One record per (scope, key), in one of four states:
 *  - in-flight: claimed by an owner token, with a lease (the record's own TTL) and the fingerprint;
 *  - completed: the stored response, kept `ttlMs`;
 *  - unknown: the upstream died after the request was sent; kept until the lease ends;
 *  - too-large: the response was bigger than the store accepts; a tombstone kept `ttlMs`.
 * Every write names the owner token and is a compare-and-set on it, so a stale owner (one whose lease
 * ran out and whose key was claimed again) can never overwrite a newer claim or a result.
 */

export interface StoredResponse {
  readonly status: number
  /** flat [name, value, …] list of the end-to-end headers to replay */
  readonly headers: readonly string[]
  readonly body: Buffer
}

export type StoreBegin =
  | { readonly kind: 'claimed' }
  | { readonly kind: 'completed', readonly response: StoredResponse }
  | { readonly kind: 'in-flight', readonly remainingMs: number }
  | { readonly kind: 'unknown', readonly remainingMs: number }
  | { readonly kind: 'too-large', readonly status: number }
  | { readonly kind: 'mismatch' }

export interface IdempotencyStore {
  /** Claim `id` for `token` with a lease, or tell what the record holds. Atomic. */
  begin (id: string, fingerprint: string, token: string, leaseMs: number): Promise<StoreBegin>
  /** Extend the lease of an in-flight claim; false when `token` no longer owns it. */
  renew (id: string, token: string, leaseMs: number): Promise<boolean>
  /** Store the response (from in-flight or unknown); false when `token` no longer owns the record. */
  complete (id: string, token: string, response: StoredResponse, ttlMs: number): Promise<boolean>
  /** Store the too-large tombstone instead of a response. */
  tooLarge (id: string, token: string, status: number, ttlMs: number): Promise<boolean>
  /** The outcome is unknown: keep the record blocked for `leaseMs` from now, then let it lapse. */
  markUnknown (id: string, token: string, leaseMs: number): Promise<boolean>
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
