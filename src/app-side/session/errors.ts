/**
 * @module session/errors
 */
import { ProxyError } from '../../shared/errors.js'
import { ClaylbError } from '../../shared/errors.js'

/** The session would outgrow `session.maxBytes`; nothing of the change was written. */
export class SessionTooLargeError extends ProxyError {
  constructor (readonly bytes: number, readonly maxBytes: number) {
    super('CLAYLB_SESSION_TOO_LARGE', `the session would hold ${bytes} bytes, over session.maxBytes (${maxBytes})`)
    this.name = 'SessionTooLargeError'
  }
}

/**
 * Another request ended the session this one works on (a login's regenerate, a logout's destroy, or
 * expiry) while it ran, or its cookie named an ended session: its changes are refused, none written,
 * and no cookie is sent, so a request that started before a login can never undo it.
 */
export class SessionEndedError extends ProxyError {
  constructor () {
    super('CLAYLB_SESSION_ENDED', 'the session was ended (by a login, a logout or expiry) while this request ran: its changes were not saved; retry with the current cookie')
    this.name = 'SessionEndedError'
  }
}

/** A misuse of the session API by the app (a programming error, not a client's). */
export class SessionUsageError extends ClaylbError {
  constructor (message: string) {
    super('CLAYLB_ERR_SESSION_USAGE', message)
  }
}
