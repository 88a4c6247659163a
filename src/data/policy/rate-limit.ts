/**
 * @module data/policy/rate-limit
 * One `rateLimits` entry compiled: its match, how a request's key is read, where its tokens come
 * from (a LimitStore), and the 429 it answers with. The key is read only for a request the match
 * selected; a request without the header or cookie the key names is not counted (nginx skips an
 * empty key too).
 */
import type { RateLimitConfig } from '../../shared/config/schema.js'
import { RATE } from '../../shared/config/vocabulary.js'
import { ProxyError } from '../../shared/errors.js'
import type { Tally } from '../upstream/host-counters.js'
import type { BucketShape, LimitStore } from './leases.js'
import { RequestMatch, equalsLower, headerValue } from './match.js'

const KEY_IP = 0
const KEY_ROUTE = 1
const KEY_HEADER = 2
const KEY_COOKIE = 3

const UNIT_SECONDS = { s: 1, m: 60, h: 3600 } as const

export class RateLimit implements BucketShape {
  readonly name: string
  readonly match: RequestMatch
  readonly capacity: number
  readonly perMs: number
  /** `ip`: the key is the client address */
  readonly byAddress: boolean
  private readonly keyKind: number
  /** lower-case header name, or the cookie name */
  private readonly keyName: string
  /** the RateLimit-Policy line (draft-ietf-httpapi-ratelimit-headers): quota q per window w seconds */
  private readonly policyLine: string
  /** settings that shape the bucket: a store is kept across a reload while they stay */
  readonly storeKey: string

  constructor (c: RateLimitConfig, readonly refused: Tally, storeOf: (limit: RateLimit) => LimitStore) {
    this.name = c.name
    this.match = new RequestMatch(c.match)
    const [, count, unit] = RATE.exec(c.rate)!
    const seconds = UNIT_SECONDS[unit as keyof typeof UNIT_SECONDS]
    this.capacity = c.burst + 1
    this.perMs = Number(count) / (seconds * 1000)
    const colon = c.key.indexOf(':')
    const kind = colon < 0 ? c.key : c.key.slice(0, colon)
    this.keyKind = kind === 'ip' ? KEY_IP : kind === 'route' ? KEY_ROUTE : kind === 'header' ? KEY_HEADER : KEY_COOKIE
    this.byAddress = this.keyKind === KEY_IP
    this.keyName = this.keyKind === KEY_HEADER ? c.key.slice(colon + 1).toLowerCase() : c.key.slice(colon + 1)
    this.policyLine = `ratelimit-policy: "${c.name}";q=${count};w=${seconds}\r\n`
    this.storeKey = JSON.stringify([c.name, c.key, c.rate, c.burst, c.scope, c.onStateDown])
    this.store = storeOf(this)
  }

  readonly store: LimitStore

  /** the request's key; undefined: this limit does not count it */
  keyOf (address: string, raw: readonly string[]): string | undefined {
    switch (this.keyKind) {
      case KEY_IP: return address === '' ? undefined : address
      case KEY_ROUTE: return ''
      case KEY_HEADER: return headerValue(raw, this.keyName)
      default: return cookieValue(raw, this.keyName)
    }
  }

  /** the 429: retry-after and the draft's RateLimit fields (r: requests left, t: seconds until one is) */
  refusal (waitMs: number): ProxyError {
    const seconds = Math.max(1, Math.ceil(waitMs / 1000))
    const err = new ProxyError('CLAYLB_RATE_LIMITED', `rate limit ${this.name} exceeded; retry in ${seconds} s`, { retryAfter: seconds })
    err.headerLines = `${this.policyLine}ratelimit: "${this.name}";r=0;t=${seconds}\r\n`
    return err
  }
}

/** one cookie's value from the Cookie header(s) */
export function cookieValue (raw: readonly string[], name: string): string | undefined {
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i]!
    if (n.length !== 6 || !equalsLower(n, 0, 'cookie')) continue
    const v = raw[i + 1]!
    let at = 0
    while (at < v.length) {
      while (v.charCodeAt(at) === 32 || v.charCodeAt(at) === 59) at++
      const end = v.indexOf(';', at)
      const stop = end < 0 ? v.length : end
      if (v.startsWith(name, at) && v.charCodeAt(at + name.length) === 61 /* = */) return v.slice(at + name.length + 1, stop).trim()
      at = stop + 1
    }
  }
  return undefined
}
