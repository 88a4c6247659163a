/**
 * @module claylb
 * The library entry: what someone embedding parts of claylb imports.
 */
export { createControlPlane, type ControlPlane, type ControlPlaneOptions } from './control/control-plane.js'
export { createDataPlane, type DataPlane, type DataPlaneOptions } from './data/data-plane.js'
export { loadConfig, buildConfig, ConfigError } from './shared/config/load.js'
export type { Config } from './shared/config/schema.js'
export { ProxyError, PROBLEMS, type ProblemCode } from './shared/errors.js'
export type { WorkerContext, RequestHandler, AppFactory, WorkerLogger } from './app-side/worker/context.js'
export type { SupervisorStats, RolloutResult } from './control/supervisor/supervisor.js'
export { sendProblem } from './shared/errors.js'
export { createRedis, waitReady, closeRedis, defineScript, key, StateUnavailableError, type RedisClient } from './shared/redis/index.js'
export {
  createSessionStore, sessionStoreFromConfig, expressSession, fastifySession,
  Session, SessionStore, SessionEndedError, SessionSecretError, SessionTooLargeError, SessionUsageError, type SessionStoreOptions,
} from './app-side/session/index.js'
export { IdempotencyCore, Claim, scopeOf, type BeginOutcome, type IdempotencyObserver, type IdempotencySettings } from './shared/idempotency/core.js'
export { MemoryStore } from './shared/idempotency/memory-store.js'
export { RedisStore, type RedisStoreOptions } from './shared/idempotency/redis-store.js'
export { StoreUnavailableError, type IdempotencyStore, type StoredResponse, type StoreBegin } from './shared/idempotency/store.js'
export { IdempotencyEngine, withIdempotency, type IdempotencyOptions } from './app-side/idempotency/middleware.js'
export { idempotencyMiddleware } from './app-side/idempotency/express.js'
export { idempotencyPlugin } from './app-side/idempotency/fastify.js'
export { BodyFingerprint, fingerprintValue } from './shared/idempotency/fingerprint.js'
export { parseIdempotencyKey } from './shared/idempotency/key.js'
