/**
 * @module idempotency/key
 * The `Idempotency-Key` request header: found in the raw header list, validated before anything else
 * touches it. draft-ietf-httpapi-idempotency-key-header-07 makes it an sf-string (`"abc"`); Stripe's
 * clients send a bare value (`abc`); both are accepted.
 */

export const MAX_KEY_LENGTH = 255

/** Why a key was refused; the text goes into the 400's `detail`. */
export type KeyProblem = string

export type KeyResult =
  | { readonly kind: 'none' }
  | { readonly kind: 'key', readonly key: string }
  | { readonly kind: 'invalid', readonly problem: KeyProblem }

const NONE: KeyResult = { kind: 'none' }

/**
 * Allowed key characters: visible ASCII (0x21-0x7E) except the comma (repeated headers are
 * comma-joined by intermediaries, so a comma makes the key ambiguous), the quote and backslash
 * (sf-string syntax) and the characters that mean something to Redis key patterns and hash tags
 * (`{ } * ? [ ]`). The key is hashed before it reaches Redis anyway; refusing these keeps a key from
 * ever being mistaken for a pattern or a tag in a log or a SCAN.
 */
const ALLOWED = new Uint8Array(128)
for (let c = 0x21; c <= 0x7e; c++) ALLOWED[c] = 1
for (const ch of ',"\\{}*?[]') ALLOWED[ch.charCodeAt(0)] = 0

function isLowerName (name: string): boolean {
  return name.length === 15 && name.toLowerCase() === 'idempotency-key'
}

/** Find and validate the key in node's `rawHeaders` ([name, value, …], duplicates kept apart). */
export function parseIdempotencyKey (rawHeaders: readonly string[]): KeyResult {
  let value: string | undefined
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (!isLowerName(rawHeaders[i]!)) continue
    if (value !== undefined) return { kind: 'invalid', problem: 'Idempotency-Key must be sent exactly once' }
    value = rawHeaders[i + 1]!
  }
  if (value === undefined) return NONE
  return validateKeyValue(value)
}

/** Validate one header value: an sf-string or a bare value, 1-255 allowed characters. */
export function validateKeyValue (value: string): KeyResult {
  let key = value
  if (key.length >= 2 && key.charCodeAt(0) === 34 && key.charCodeAt(key.length - 1) === 34) key = key.slice(1, -1)
  if (key.length === 0) return { kind: 'invalid', problem: 'Idempotency-Key must not be empty' }
  if (key.length > MAX_KEY_LENGTH) return { kind: 'invalid', problem: `Idempotency-Key must be at most ${MAX_KEY_LENGTH} characters` }
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i)
    if (c >= 128 || ALLOWED[c] === 0) {
      return { kind: 'invalid', problem: 'Idempotency-Key must be visible ASCII without spaces, commas, quotes, backslashes or { } * ? [ ]' }
    }
  }
  return { kind: 'key', key }
}
