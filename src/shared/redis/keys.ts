/**
 * @module redis/keys
 * Key names. The prefix is applied here, never by ioredis' keyPrefix option: Lua scripts receive
 * exactly the names built here in KEYS, so what a script touches and what Cluster routes agree.
 */

/**
 * `prefix{tag}suffix`. Every key built with the same tag lands in the same Cluster slot, so one script
 * may touch all of them. The tag must not contain `{` or `}` (callers hash untrusted input first).
 */
export function key (prefix: string, tag: string, suffix = ''): string {
  return `${prefix}{${tag}}${suffix}`
}
