/**
 * @module redis/rate-limit-script
 * TAKE: a token bucket for one key of a `global` rate limit, in one script, so every instance's
 * takes are serialised by Redis. Its clock is Redis' own (TIME): instances with skewed clocks still
 * agree. KEYS: the bucket (a hash: t = tokens, a float; at = ms of the last take). ARGV: capacity
 * (burst + 1), tokens per ms, tokens wanted (a lease: data/policy/leases.ts). Returns {taken, ms
 * until the rest of what was wanted will be there, when fewer than wanted were left}: a process asks
 * again only then, so an over-limit flood costs each process one round trip per lease's worth of
 * the rate, not one per refused request. The key expires once it would have
 * filled again (a full bucket and no key are the same).
 */
import type { RedisClient } from './client.js'
import { defineScript } from './scripts.js'
import { key } from './keys.js'
import { createHash } from 'node:crypto'

export const TAKE_LUA = `
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local cap = tonumber(ARGV[1])
local perMs = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local b = redis.call('HMGET', KEYS[1], 't', 'at')
local tokens = tonumber(b[1])
local at = tonumber(b[2])
if tokens == nil or at == nil then
  tokens = cap
elseif ms > at then
  tokens = math.min(cap, tokens + (ms - at) * perMs)
else
  ms = at
end
local got = math.min(want, math.floor(tokens))
tokens = tokens - got
redis.call('HSET', KEYS[1], 't', string.format('%.17g', tokens), 'at', ms)
redis.call('PEXPIRE', KEYS[1], math.ceil((cap - tokens) / perMs) + 1000)
local wait = 0
if got < want then wait = math.max(1, math.ceil((want - got - tokens) / perMs)) end
return {got, wait}
`

/** a `global` limit's take, bound to one client and key prefix */
export type TakeTokens = (limit: string, key: string, capacity: number, perMs: number, want: number) => Promise<readonly [number, number]>

export function redisTake (client: RedisClient, prefix: string): TakeTokens {
  const run = defineScript<[number, number]>(client, 'claylbRateTake', 1, TAKE_LUA, { writes: true })
  return (limit, k, capacity, perMs, want) => run([bucketKey(prefix, limit, k)], [capacity, perMs, want])
}

/** `prefix` rl{limit:hash of the key}: a client's header or cookie value never shapes a key (or its hash tag) */
export function bucketKey (prefix: string, limit: string, k: string): string {
  return key(prefix, `rl:${limit}:${createHash('sha1').update(k).digest('base64url')}`)
}
