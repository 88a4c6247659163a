/**
 * @module redis/scripts
 * Lua scripts, loaded once per client and run with EVALSHA (ioredis `defineCommand`, which falls back
 * to EVAL after NOSCRIPT, e.g. when Redis restarted). Every key a script touches is passed in KEYS and
 * all of them share one hash tag (see keys.ts), so every script runs on Redis Cluster.
 */
import type { RedisClient } from './client.js'
import { whenConnected } from './client.js'
import { toStateError, toWriteError } from './errors.js'

export type ScriptArg = string | number | Buffer

/**
 * A script bound to one client: `run(keys, args)`, rejecting with StateUnavailableError on an outage,
 * or, for a script that writes, StateOutcomeUnknownError when it was sent and its reply was lost.
 */
export type Script<R> = (keys: readonly string[], args: readonly ScriptArg[]) => Promise<R>

export function defineScript<R = unknown> (client: RedisClient, name: string, numberOfKeys: number, lua: string, o: { writes: boolean }): Script<R> {
  if (!(name in client)) client.defineCommand(name, { numberOfKeys, lua })
  const command = (client as unknown as Record<string, (...a: ScriptArg[]) => Promise<R>>)[name]!
  return async (keys, args) => {
    if (keys.length !== numberOfKeys) throw new TypeError(`script ${name} takes ${numberOfKeys} keys, got ${keys.length}`)
    // not connected: refused before anything is sent (after the first connection, waited for)
    if (o.writes) await whenConnected(client, `Redis (${name})`)
    try {
      return await command.call(client, ...keys, ...args)
    } catch (err) {
      throw o.writes ? toWriteError(err, `Redis (${name})`) : toStateError(err, `Redis (${name})`)
    }
  }
}
