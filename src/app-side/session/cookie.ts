/**
 * @module session/cookie
 * Session ids and their signed cookie value `<id>.<HMAC-SHA256(id) base64url>`. Ids are 144 random
 * bits; the first secret signs, every secret verifies (rotation without logging everyone out).
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { parseCookie, stringifySetCookie } from 'cookie'

const ID_BYTES = 18
const ID_PATTERN = /^[A-Za-z0-9_-]{24}$/

export function newSessionId (): string {
  return randomBytes(ID_BYTES).toString('base64url')
}

function mac (secret: string, id: string): Buffer {
  return createHmac('sha256', secret).update(id).digest()
}

export function signId (id: string, secret: string): string {
  return `${id}.${mac(secret, id).toString('base64url')}`
}

/** The session id of a signed value, or undefined when malformed or signed by none of the secrets. */
export function verifySigned (value: string, secrets: readonly string[]): string | undefined {
  const dot = value.lastIndexOf('.')
  if (dot < 0) return undefined
  const id = value.slice(0, dot)
  if (!ID_PATTERN.test(id)) return undefined
  const given = Buffer.from(value.slice(dot + 1), 'base64url')
  if (given.length !== 32) return undefined
  for (const secret of secrets) {
    if (timingSafeEqual(given, mac(secret, id))) return id
  }
  return undefined
}

/** The raw value of cookie `name` in a Cookie header, without parsing headers that cannot hold it. */
export function readCookie (header: string | undefined, name: string): string | undefined {
  if (!header || !header.includes(`${name}=`)) return undefined
  return parseCookie(header)[name]
}

export interface CookieAttributes { name: string, secure: boolean }

export function setCookieHeader (value: string, a: CookieAttributes): string {
  return stringifySetCookie(a.name, value, { path: '/', httpOnly: true, sameSite: 'lax', secure: a.secure })
}

export function clearCookieHeader (a: CookieAttributes): string {
  return stringifySetCookie(a.name, '', { path: '/', httpOnly: true, sameSite: 'lax', secure: a.secure, maxAge: 0 })
}
