/**
 * @module idempotency/decision
 * The one decision flow for a request on a keyed route, shared by the proxy's gate and the Node
 * middleware: refuse a path that cannot be normalised, validate the key, fingerprint the request
 * (only once the key is valid: that is when the body is read), scope the key (the credential only:
 * one key is one operation of that client, on whichever route), claim it, and map what
 * the store said to an answer. The caller only moves bytes.
 */
import { ProxyError } from '../errors.js'
import { scopeOf, type Claim, type IdempotencyCore } from './core.js'
import { missingKeyError, outcomeError, unavailableError } from './http.js'
import { parseIdempotencyKey } from './key.js'
import { fingerprintTarget } from './route-path.js'
import type { IdempotentRoute } from './routes.js'
import type { ScopeSources } from './scope.js'
import type { StoredResponse } from './store.js'

/** What to do with one request. */
export type Decision =
  | { readonly kind: 'pass' }
  | { readonly kind: 'reject', readonly error: ProxyError }
  | { readonly kind: 'replay', readonly response: StoredResponse }
  | { readonly kind: 'proceed', readonly claim: Claim }

const PASS: Decision = { kind: 'pass' }

/** Sent to the upstream with a claimed request: the record id (stable across retries) and its fence. */
export const ID_HEADER = 'claylb-idempotency-id'
export const FENCE_HEADER = 'claylb-idempotency-fence'

export function unsafePathError (): ProxyError {
  return new ProxyError('CLAYLB_PATH_NOT_NORMALISABLE', 'the path has an escape (%2F, %5C, %00 or a malformed %) that routers may read as another route; on a keyed route it is refused rather than forwarded unkeyed')
}

export class IdempotencyDecider {
  constructor (readonly core: IdempotencyCore, readonly scope: ScopeSources) {}

  /**
   * Decide for one request. `fingerprint(target)` is called only with a valid key, with the request
   * target as the fingerprint names it (route-path.ts's fingerprintTarget); a ProxyError it throws
   * (body too large, invalid JSON) is the answer, anything else (the client left) is rethrown.
   */
  async decide (rawHeaders: readonly string[], path: string, route: IdempotentRoute, fingerprint: (target: string) => string | Promise<string>): Promise<Decision> {
    if (route.unsafePath === true) return this.reject(unsafePathError())
    const key = parseIdempotencyKey(rawHeaders)
    if (key.kind === 'none') return route.required ? this.reject(missingKeyError(route)) : PASS
    if (key.kind === 'invalid') return this.reject(new ProxyError('CLAYLB_IDEMPOTENCY_KEY_INVALID', key.problem))
    let fp: string
    try {
      fp = await fingerprint(fingerprintTarget(path))
    } catch (err) {
      if (err instanceof ProxyError) return this.reject(err)
      throw err
    }
    let o
    try {
      // one key, one operation: the record is the scope's and the key's, whatever route or method
      // the request came on; any other request under it is a mismatch (its fingerprint differs)
      o = await this.core.begin(scopeOf(this.scope.credentialOf(rawHeaders)), key.key, fp, route.upstreamDedupes)
    } catch (err) {
      this.core.observer.failClosed()
      return { kind: 'reject', error: unavailableError(err) }
    }
    if (o.kind === 'proceed' || o.kind === 'replay') return o
    return this.reject(outcomeError(o))
  }

  private reject (error: ProxyError): Decision {
    this.core.observer.rejected(error.status, error.code)
    return { kind: 'reject', error }
  }
}

/**
 * The upstream request's headers for a claimed request: the caller's list without any
 * `claylb-idempotency-*` a client sent (only claylb speaks for the record), plus the record id and
 * fence. Also used with no claim, to strip.
 */
export function withIdempotencyHeaders (headers: string[], claim: Claim | null): string[] {
  for (let i = headers.length - 2; i >= 0; i -= 2) {
    const n = headers[i]!
    if ((n.length === ID_HEADER.length || n.length === FENCE_HEADER.length) && isOurs(n)) headers.splice(i, 2)
  }
  if (claim !== null) headers.push(ID_HEADER, claim.id, FENCE_HEADER, String(claim.fence))
  return headers
}

function isOurs (name: string): boolean {
  const n = name.toLowerCase()
  return n === ID_HEADER || n === FENCE_HEADER
}
