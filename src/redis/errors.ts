/**
 * @module redis/errors
 * The one failure the request path reports for the state tier: Redis is unreachable, too slow, or
 * not serving (cluster down, loading, failover). Requests that need state answer 503 with it, at once.
 */
import { ProxyError } from '../errors.js'

export class StateUnavailableError extends ProxyError {
  constructor (detail: string, options?: { cause?: unknown }) {
    super('CLAYLB_STATE_UNAVAILABLE', detail, { retryAfter: 1, ...options })
    this.name = 'StateUnavailableError'
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
