/**
 * @module lazy-modules
 * Dependencies loaded on first use, not at import. A proxy process forwards with the engine and
 * never checks health, starts workers or (without idempotency or sessions) talks to Redis, so it
 * starts without undici's, ioredis's and prom-client's load time and memory (test/cores/proxy-start.test.ts reads the build's
 * static imports). Node caches a module after its first load: later calls cost a map lookup.
 */
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)

export const undici = (): typeof import('undici') => require('undici') as typeof import('undici')
export const ioredis = (): typeof import('ioredis') => require('ioredis') as typeof import('ioredis')
export const promClient = (): typeof import('prom-client') => require('prom-client') as typeof import('prom-client')
/** the backtracking check of a route's `rewrite` pattern (shared/policy/rewrite): loaded when a config has one */
export const safeRegex = (): typeof import('safe-regex2') => require('safe-regex2') as typeof import('safe-regex2')
