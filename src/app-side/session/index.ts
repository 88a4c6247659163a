/**
 * @module session
 * Sessions in Redis that survive any worker and lose no update. See store.ts.
 */
export { createSessionStore, sessionStoreFromConfig, SessionStore, type SessionStoreOptions } from './store.js'
export { Session } from './session.js'
export { SessionEndedError, SessionTooLargeError, SessionUsageError } from './errors.js'
export { readSecrets, ensureSessionSecret, SessionSecretError } from './secret.js'
export { expressSession, fastifySession } from './adapters.js'
