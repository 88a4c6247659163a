/**
 * @module balancer/hash-key
 * What a consistent-hash pool hashes (`balancer.on`), read straight from the request without copying
 * it: a header's value, one cookie's value, the client address or the path (query excluded). Every
 * reader hashes the characters in place (FNV-1a then murmur3's finaliser), so a pick allocates nothing.
 */
import { HASH_ON } from '../../shared/config/vocabulary.js'

/** the request as a balancer sees it (engine/exchange implements it) */
export interface PickContext {
  readonly path: string
  /** llhttp's [name, value, …] as the client sent them */
  readonly rawHeaders: readonly string[]
  /** the client's address (the PROXY protocol's source when the listener reads it) */
  readonly clientAddress: string
}

/** `on` parsed once, at config time */
export type HashOn =
  | { kind: 'header', name: string }
  | { kind: 'cookie', name: string }
  | { kind: 'ip' }
  | { kind: 'path' }


export function parseHashOn (on: string): HashOn | undefined {
  const m = HASH_ON.exec(on)
  if (m === null) return undefined
  if (m[1] === 'header') return { kind: 'header', name: m[2]!.toLowerCase() }
  if (m[1] === 'cookie') return { kind: 'cookie', name: m[2]! }
  return on === 'ip' ? { kind: 'ip' } : { kind: 'path' }
}

/** no key in this request: the pool falls back to round robin */
export const NO_KEY = -1

/**
 * FNV-1a over s[start, end), finalised (murmur3 fmix32) so near keys spread over the ring; 31 bits
 * (0..2^31-1), so the number is always a small integer to V8, never a boxed double: no allocation
 */
export function hashRange (s: string, start: number, end: number): number {
  let h = 0x811c9dc5
  for (let i = start; i < end; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 1
}

export function hashString (s: string): number {
  return hashRange(s, 0, s.length)
}

/** the key's hash, or NO_KEY when the request has none */
export function hashKey (on: HashOn, r: PickContext): number {
  switch (on.kind) {
    case 'ip': return r.clientAddress === '' ? NO_KEY : hashString(r.clientAddress)
    case 'path': {
      const p = r.path
      const q = p.indexOf('?')
      return hashRange(p, 0, q < 0 ? p.length : q)
    }
    case 'header': {
      const raw = r.rawHeaders
      for (let i = 0; i < raw.length; i += 2) if (sameName(raw[i]!, on.name)) return hashString(raw[i + 1]!)
      return NO_KEY
    }
    case 'cookie': {
      const raw = r.rawHeaders
      for (let i = 0; i < raw.length; i += 2) {
        if (!sameName(raw[i]!, 'cookie')) continue
        const h = cookieHash(raw[i + 1]!, on.name)
        if (h !== NO_KEY) return h
      }
      return NO_KEY
    }
  }
}

/** ASCII case-insensitive equality with a lower-case name, without lowering a copy */
function sameName (name: string, lower: string): boolean {
  if (name.length !== lower.length) return false
  for (let i = 0; i < name.length; i++) {
    let c = name.charCodeAt(i)
    if (c >= 65 && c <= 90) c += 32
    if (c !== lower.charCodeAt(i)) return false
  }
  return true
}

/** the hash of cookie `name`'s value in a Cookie header ("a=1; b=2"), NO_KEY when absent */
function cookieHash (v: string, name: string): number {
  let i = 0
  const n = v.length
  while (i < n) {
    while (i < n && (v.charCodeAt(i) === 32 || v.charCodeAt(i) === 9)) i++
    let end = v.indexOf(';', i)
    if (end < 0) end = n
    if (end - i > name.length && v.charCodeAt(i + name.length) === 61 && v.startsWith(name, i)) {
      let s = i + name.length + 1
      let e = end
      while (e > s && (v.charCodeAt(e - 1) === 32 || v.charCodeAt(e - 1) === 9)) e--
      if (e - s >= 2 && v.charCodeAt(s) === 34 && v.charCodeAt(e - 1) === 34) { s++; e-- }
      return hashRange(v, s, e)
    }
    i = end + 1
  }
  return NO_KEY
}
