/**
 * @module claylb
 * The library entry: what someone embedding parts of claylb imports.
 */
export { createApp, type App } from './app.js'
export { loadConfig, buildConfig, ConfigError } from './config/load.js'
export type { Config } from './config/schema.js'
export { ProxyError, PROBLEMS, type ProblemCode } from './errors.js'
export type { WorkerContext, RequestHandler, AppFactory, WorkerLogger } from './workers/context.js'
export type { SupervisorStats, RolloutResult } from './workers/supervisor.js'
export { sendProblem } from './errors.js'
export { createRedis, waitReady, closeRedis, defineScript, key, StateUnavailableError, type RedisClient } from './redis/index.js'
export {
  createSessionStore, sessionStoreFromConfig, expressSession, fastifySession,
  Session, SessionStore, SessionEndedError, SessionSecretError, SessionTooLargeError, SessionUsageError, type SessionStoreOptions,
} from './session/index.js'
export { IdempotencyCore, Claim, scopeOf, type BeginOutcome, type IdempotencyObserver, type IdempotencySettings } from './idempotency/core.js'
export { MemoryStore } from './idempotency/memory-store.js'
export { RedisStore, type RedisStoreOptions } from './idempotency/redis-store.js'
export { StoreUnavailableError, type IdempotencyStore, type StoredResponse, type StoreBegin } from './idempotency/store.js'
export { IdempotencyEngine, withIdempotency, type IdempotencyOptions } from './idempotency/middleware.js'
export { idempotencyMiddleware } from './idempotency/express.js'
export { idempotencyPlugin } from './idempotency/fastify.js'
export { BodyFingerprint, fingerprintValue } from './idempotency/fingerprint.js'
export { parseIdempotencyKey } from './idempotency/key.js'
