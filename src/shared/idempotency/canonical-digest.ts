/**
 * @module idempotency/canonical-digest
 * A JSON body's canonical value, hashed: what the fingerprint holds for JSON. Shared by the inline
 * path (small bodies) and the worker thread (large ones, canonical-offload.ts), so both give the
 * same answer for the same bytes.
 */
import { isUtf8 } from 'node:buffer'
import { createHash } from 'node:crypto'
import { canonicalJson, JsonDuplicateMemberError } from './canonical-json.js'

export type CanonicalResult =
  /** sha256 (hex) of the canonical text */
  | { readonly kind: 'json', readonly digest: string }
  /** not JSON after all (or not UTF-8): compared byte for byte */
  | { readonly kind: 'bytes' }
  /** a member name given twice: the request is refused */
  | { readonly kind: 'duplicate', readonly message: string }

const BYTES: CanonicalResult = { kind: 'bytes' }

export function canonicalDigest (body: Uint8Array): CanonicalResult {
  // invalid UTF-8 would decode to U+FFFD: two different bodies, one text
  if (!isUtf8(body)) return BYTES
  try {
    const text = canonicalJson(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'))
    return { kind: 'json', digest: createHash('sha256').update(text).digest('hex') }
  } catch (err) {
    if (err instanceof JsonDuplicateMemberError) return { kind: 'duplicate', message: err.message }
    return BYTES
  }
}
