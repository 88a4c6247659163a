/**
 * @module workers/context
 * What an app module running in an ephemeral worker is given, and what it must give back.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { WorkerConfig } from '../../shared/workers/protocol.js'
import type { RedisClient } from '../../shared/redis/client.js'
import type { Session } from '../session/session.js'

/** a `node:http` request handler (Express and Koa's `app.callback()` are ones) */
export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => unknown

export interface WorkerLogger {
  debug (obj: object | string, msg?: string): void
  info (obj: object | string, msg?: string): void
  warn (obj: object | string, msg?: string): void
  error (obj: object | string, msg?: string): void
}

export interface WorkerContext {
  /** unique per process (`w7`); also sent as `x-worker-id` */
  readonly id: string
  /** the slot this worker fills (1..workers.count); a replacement keeps its slot */
  readonly slot: number
  readonly generation: number
  /** the slice of claylb's config a worker needs (WorkerConfig: redis, session, log.level, healthCheck.path, workers, idempotency.ttlSeconds): never admin.* */
  readonly config: WorkerConfig
  /** an empty directory, the process's cwd, deleted when the worker exits */
  readonly tmpdir: string
  readonly logger: WorkerLogger
  /**
   * This worker's Redis client (`config.redis`; ioredis), made on first call and shared with the
   * sessions. Build keys with `key()` from claylb's redis module under `config.redis.keyPrefix`.
   */
  redis (): Promise<RedisClient>
  /**
   * The request's session, saved by itself before the response starts (see README "Sessions").
   * Rejects with StateUnavailableError when Redis is down: thrown on, the runtime answers 503 problem+json.
   */
  session (req: IncomingMessage, res: ServerResponse): Promise<Session>
}

/** A factory: `export default function (ctx)` or `export function createApp (ctx)`. */
export type AppFactory = (ctx: WorkerContext) => RequestHandler | Promise<RequestHandler>
