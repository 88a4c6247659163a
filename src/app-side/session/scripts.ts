/**
 * @module session/scripts
 * The two Lua scripts of the session store. Both take KEYS = [session hash, tombstone], which share the
 * session id as hash tag (one slot on Cluster).
 *
 * The hash holds the app's fields, each value JSON, plus `$v`, a version bumped by every save.
 */

/**
 * SAVE: apply one request's changes as deltas, atomically.
 * ARGV: mustExist ('1' when the request loaded an existing session), ttlMs, maxBytes (0 = none),
 *   nSet, nDel, nIncr, then nSet (field, json) pairs, nDel fields, nIncr (field, by) pairs.
 * Returns {'ok', version, incremented values...} | {'destroyed'} | {'gone'} | {'too_large', bytes} |
 *   {'not_integer', field}. Nothing is written unless the answer is 'ok'.
 * A tombstone (destroyed, or the old id of a regenerate) or a vanished hash (expired, destroyed) of a
 * session the request saw existing refuses the save, so a late save never resurrects a session; the
 * request then sends no cookie either (Session#ended), so it cannot undo the login or logout that
 * ended the id. Refused here, in one step with the tombstone check, so it holds across instances.
 */
export const SAVE_LUA = `
if redis.call('EXISTS', KEYS[2]) == 1 then return {'destroyed'} end
if ARGV[1] == '1' and redis.call('EXISTS', KEYS[1]) == 0 then return {'gone'} end
local nSet, nDel, nIncr = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local s = 7
local d = s + 2 * nSet
local c = d + nDel
for i = c, c + 2 * nIncr - 1, 2 do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  if cur and not string.match(cur, '^%-?%d+$') then return {'not_integer', ARGV[i]} end
end
local maxBytes = tonumber(ARGV[3])
if nSet > 0 and maxBytes > 0 then
  local size = {}
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do size[all[i]] = #all[i] + #all[i + 1] end
  for i = s, d - 1, 2 do size[ARGV[i]] = #ARGV[i] + #ARGV[i + 1] end
  for i = d, c - 1 do size[ARGV[i]] = nil end
  local total = 0
  for _, n in pairs(size) do total = total + n end
  if total > maxBytes then return {'too_large', tostring(total)} end
end
if nSet > 0 then redis.call('HSET', KEYS[1], unpack(ARGV, s, d - 1)) end
if nDel > 0 then redis.call('HDEL', KEYS[1], unpack(ARGV, d, c - 1)) end
local out = {'ok', 0}
for i = c, c + 2 * nIncr - 1, 2 do
  out[#out + 1] = redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
end
out[2] = redis.call('HINCRBY', KEYS[1], '$v', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return out
`

/**
 * TAKE: end a session id (destroy, or the old id of a regenerate): read its data, delete it and leave
 * a tombstone for ttlMs, all at once, so a concurrent save either lands before (and is taken along)
 * or is refused after.
 * ARGV: ttlMs. Returns {'ok', {field, json, ...}} | {'destroyed'}.
 */
export const TAKE_LUA = `
if redis.call('EXISTS', KEYS[2]) == 1 then return {'destroyed'} end
local all = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
return {'ok', all}
`
