/**
 * @module session/errors
 */
import { ProxyError } from '../errors.js'
import { ClaylbError } from '../errors.js'

/** The session would outgrow `session.maxBytes`; nothing of the change was written. */
export class SessionTooLargeError extends ProxyError {
  constructor (readonly bytes: number, readonly maxBytes: number) {
    super('CLAYLB_SESSION_TOO_LARGE', `the session would hold ${bytes} bytes, over session.maxBytes (${maxBytes})`)
    this.name = 'SessionTooLargeError'
  }
}

/** A misuse of the session API by the app (a programming error, not a client's). */
export class SessionUsageError extends ClaylbError {
  constructor (message: string) {
    super('CLAYLB_ERR_SESSION_USAGE', message)
  }
}
