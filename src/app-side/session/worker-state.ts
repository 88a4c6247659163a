/**
 * @module session/worker-state
 * The state tier as a worker process sees it: one Redis client and one session store per process,
 * made on first use (a worker whose app never touches state never loads ioredis), closed at exit.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Config } from '../../shared/config/schema.js'
import type { RedisClient, StateLogger } from '../../shared/redis/client.js'
import type { Session } from './session.js'
import type { SessionStore } from './store.js'

export interface WorkerState {
  /** this worker's Redis client (`config.redis`), connected on first use */
  redis (): Promise<RedisClient>
  /** the session of a request; rejects with StateUnavailableError (503) when Redis is down */
  session (req: IncomingMessage, res: ServerResponse): Promise<Session>
  close (): Promise<void>
}

export type { StateLogger } from '../../shared/redis/client.js'

export function createWorkerState (config: Pick<Config, 'redis' | 'session'>, logger?: StateLogger, env: NodeJS.ProcessEnv = process.env): WorkerState {
  let redis: Promise<RedisClient> | undefined
  let store: Promise<SessionStore> | undefined
  const getRedis = (): Promise<RedisClient> => {
    redis ??= import('../../shared/redis/client.js').then((m) => {
      const client = m.createRedis(config.redis, 'worker')
      if (logger) m.logStateTransitions(client, m.describeRedis(config.redis), logger)
      return client
    })
    return redis
  }
  const getStore = (): Promise<SessionStore> => {
    store ??= Promise.all([getRedis(), import('./store.js')]).then(([client, m]) => m.sessionStoreFromConfig(config, client, env))
    return store
  }
  return {
    redis: getRedis,
    async session (req, res) {
      return (await getStore()).session(req, res)
    },
    async close () {
      if (!redis) return
      const { closeRedis } = await import('../../shared/redis/client.js')
      const client = await redis
      client.removeAllListeners('close') // closing it ourselves is not an outage
      await closeRedis(client)
    },
  }
}
