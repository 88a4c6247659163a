/**
 * @module data/observe/random-hex
 * Random ids without a system call per id: one 4 KB pool of random bytes, refilled when used up,
 * read as hex. A trace id is 16 bytes, a span id 8 (W3C Trace Context).
 */
import { randomFillSync } from 'node:crypto'

const POOL_BYTES = 4096
const pool = Buffer.allocUnsafe(POOL_BYTES)
let at = POOL_BYTES

/** `bytes` random bytes as 2 × bytes lowercase hex digits; never all zeros (an invalid W3C id) */
export function randomHex (bytes: number): string {
  for (;;) {
    if (at + bytes > POOL_BYTES) {
      randomFillSync(pool)
      at = 0
    }
    const start = at
    at += bytes
    for (let i = start; i < at; i++) if (pool[i] !== 0) return pool.toString('hex', start, at)
  }
}
