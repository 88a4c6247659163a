/**
 * @module idempotency/http
 * What the proxy and the middleware share on the HTTP side: the outcome → answer mapping, the
 * headers kept for replay, and the replay writer.
 */
import type { ServerResponse } from 'node:http'
import { ProxyError } from '../errors.js'
import type { BeginOutcome } from './core.js'
import type { IdempotentRoute } from './routes.js'
import type { StoredResponse } from './store.js'

/** Response headers never stored for replay: another client's cookie or challenge, framing, our own marker. */
const NOT_REPLAYED = new Set([
  'set-cookie', 'www-authenticate', 'proxy-authenticate', 'authorization', 'content-length', 'transfer-encoding',
  'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'date', 'idempotent-replayed',
])

/** Filter a flat [name, value, …] list (already free of Connection-listed names) for storage. */
export function replayableHeaders (flat: readonly string[]): string[] {
  const out: string[] = []
  for (let i = 0; i < flat.length; i += 2) {
    if (!NOT_REPLAYED.has(flat[i]!.toLowerCase())) out.push(flat[i]!, flat[i + 1]!)
  }
  return out
}

/** Answer from the record: the stored status, headers and body bytes, marked as a replay. */
export function writeReplay (res: ServerResponse, r: StoredResponse): void {
  const headers = [...r.headers, 'idempotent-replayed', 'true', 'content-length', String(r.body.length)]
  res.writeHead(r.status, headers)
  res.end(r.body)
}

const seconds = (ms: number): number => Math.max(1, Math.ceil(ms / 1000))

/** The problem answer for every outcome that is neither proceed nor replay. */
export function outcomeError (o: Exclude<BeginOutcome, { kind: 'proceed' } | { kind: 'replay' }>): ProxyError {
  switch (o.kind) {
    case 'in-flight':
      // the first request has run `elapsedMs`: it likely needs about as long again, and the lease
      // (renewed while it lives) bounds how long a retry can usefully wait
      return new ProxyError('CLAYLB_IDEMPOTENCY_IN_FLIGHT', 'a request with this Idempotency-Key is still being processed; retry later', { retryAfter: Math.min(seconds(o.elapsedMs), seconds(o.remainingMs)) })
    case 'unknown':
      // no retry-after: retrying cannot help, the record says unknown until it expires
      return new ProxyError('CLAYLB_IDEMPOTENCY_OUTCOME_UNKNOWN', 'the request with this Idempotency-Key may have been executed but its outcome is unknown (the server or the proxy handling it failed before recording an answer); it will not be executed again for this key. Check the resource, or use a new key to run it again')
    case 'too-large':
      return new ProxyError('CLAYLB_IDEMPOTENCY_TOO_LARGE', `the request with this Idempotency-Key was executed (status ${o.status}) but its response was too large to store for replay; it will not be executed again`)
    case 'mismatch':
      return new ProxyError('CLAYLB_IDEMPOTENCY_MISMATCH', 'this Idempotency-Key was already used with a different request (method, path, query, content type or body, on any route); use a new key')
  }
}

export function unavailableError (cause: unknown): ProxyError {
  return new ProxyError('CLAYLB_STATE_UNAVAILABLE', 'the idempotency store is unavailable; the request was not executed', { cause, retryAfter: 1 })
}

/** A keyed body above the route's `maxBodyBytes`: its JSON would be canonicalised to fingerprint it. */
export function keyedBodyTooLarge (route: IdempotentRoute): ProxyError {
  return new ProxyError('CLAYLB_BODY_TOO_LARGE', `the body of a request with an Idempotency-Key on ${route.match} exceeds idempotency.maxBodyBytes (${route.maxBodyBytes} bytes)`)
}

export function missingKeyError (route: IdempotentRoute): ProxyError {
  return new ProxyError('CLAYLB_IDEMPOTENCY_KEY_MISSING', `${route.match} requires an Idempotency-Key header`)
}
