/**
 * @module redis
 * The Redis connection layer of the whole project: clients, key names, scripts, the outage error.
 */
export { createRedis, logStateTransitions, waitReady, whenConnected, closeRedis, describeRedis, type RedisClient, type RedisConfig } from './client.js'
export { key } from './keys.js'
export { defineScript, type Script, type ScriptArg } from './scripts.js'
export { StateUnavailableError, StateOutcomeUnknownError, toStateError, toWriteError } from './errors.js'
