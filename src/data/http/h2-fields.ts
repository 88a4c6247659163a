/**
 * @module engine/h2-fields
 * RFC 9113 §8.2.1 field checks nghttp2 leaves to claylb. nghttp2 itself resets a stream whose field
 * names have uppercase letters; node:http2's invalid-header callback drops a field with a bad name
 * character or CR, LF or NUL in its value before claylb sees it; a value with whitespace at either
 * end is dropped the same way on Node 20, and passed through on Node 22+ (with
 * `strictFieldWhitespaceValidation: false`), where this check makes the request malformed instead.
 */

/** SP or HTAB */
const isWs = (c: number): boolean => c === 32 || c === 9

/** A field value starting or ending with whitespace, which RFC 9113 §8.2.1 makes malformed. */
export function hasFlankedValue (raw: string[]): boolean {
  for (let i = 1; i < raw.length; i += 2) {
    const v = raw[i]!
    if (v.length > 0 && (isWs(v.charCodeAt(0)) || isWs(v.charCodeAt(v.length - 1)))) return true
  }
  return false
}
