/**
 * @module redis/errors
 * The failures the request path reports for the state tier:
 * - StateUnavailableError: Redis is unreachable, too slow, or not serving (cluster down, loading,
 *   failover) and nothing was changed. Requests that need state answer 503 with it, at once, and a
 *   retry is safe (the idempotency layer releases the key on a 503).
 * - StateOutcomeUnknownError: a write was sent and its reply was lost (the connection dropped or the
 *   command timed out). It may or may not have been applied, so it must not look retryable: a 500
 *   the idempotency layer stores, so a retry with the same key can never apply it a second time.
 */
import { ProxyError } from '../errors.js'

export class StateUnavailableError extends ProxyError {
  constructor (detail: string, options?: { cause?: unknown }) {
    super('CLAYLB_STATE_UNAVAILABLE', detail, { retryAfter: 1, ...options })
    this.name = 'StateUnavailableError'
  }
}

export class StateOutcomeUnknownError extends ProxyError {
  constructor (detail: string, options?: { cause?: unknown }) {
    super('CLAYLB_STATE_OUTCOME_UNKNOWN', detail, options)
    this.name = 'StateOutcomeUnknownError'
  }
}

/** Replies that mean "this Redis cannot serve right now", as opposed to a bug in a command or script. */
const UNAVAILABLE_REPLY = /^(CLUSTERDOWN|LOADING|READONLY|MASTERDOWN|TRYAGAIN|BUSY|NOREPLICAS|MISCONF)\b/

/**
 * Map a failed Redis call to StateUnavailableError when it is an outage (connection refused or lost,
 * offline, command timeout, cluster down); anything else (a wrong command, a script error) is returned
 * as it was, because it is a bug to surface, not a 503 to retry.
 */
export function toStateError (err: unknown, what = 'state tier'): Error {
  if (err instanceof StateUnavailableError) return err
  const e = err as Error & { name?: string }
  if (e?.name === 'ReplyError' && !UNAVAILABLE_REPLY.test(e.message)) return e
  return new StateUnavailableError(`${what} unavailable: ${e?.message ?? String(err)}`, { cause: err })
}

/**
 * ioredis' refusal to send while disconnected (the offline queue is off once connected): the command
 * never left the process. Every other transport failure of a sent command (connection lost, command
 * timeout, "max retries per request" flushing the sent queue) leaves its outcome unknown.
 */
const NEVER_SENT = /enableOfflineQueue/

/**
 * For a write that is not safe to apply twice: like toStateError, but a failure after the command was
 * sent is a StateOutcomeUnknownError, never a retryable 503. Check `client.status === 'ready'` before
 * sending to turn "not connected" into a clean 503.
 */
export function toWriteError (err: unknown, what = 'state tier'): Error {
  const e = toStateError(err, what)
  if (!(e instanceof StateUnavailableError) || err instanceof StateUnavailableError) return e
  const message = (err as Error | undefined)?.message ?? String(err)
  if (NEVER_SENT.test(message)) return e
  return new StateOutcomeUnknownError(`${what}: the write was sent and its reply was lost (${message}); it may or may not have been applied`, { cause: err })
}

/** A StateUnavailableError when `client` is not connected: a write refused before it is sent is safe to retry. */
export function notConnected (client: { readonly status: string }, what = 'state tier'): StateUnavailableError | undefined {
  return client.status === 'ready' ? undefined : new StateUnavailableError(`${what} unavailable: Redis is ${client.status}`)
}
