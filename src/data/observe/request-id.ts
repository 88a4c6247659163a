/**
 * @module data/observe/request-id
 * Request ids (`x-request-id`, the name is `requestId.header`): a per-process random prefix and a
 * counter, so an id costs one short string and no random bytes, and two processes or two instances
 * never make the same one (64 random bits of prefix). An id from a trusted forwarder is kept when it
 * is a sane token; anything else a client sends under that name is replaced.
 */
import { randomHex } from './random-hex.js'

const PREFIX = randomHex(8) + '-'
let counter = 0

export function newRequestId (): string {
  return PREFIX + (++counter).toString(36)
}

/** an id worth keeping: 1–200 visible ASCII characters (what could not harm a log line or a header) */
export function keepableId (v: string): boolean {
  if (v.length === 0 || v.length > 200) return false
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i)
    if (c <= 32 || c >= 127 || c === 34 /* " */ || c === 92 /* \ */) return false
  }
  return true
}
