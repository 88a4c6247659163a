/**
 * @module errors
 * One error type for everything the proxy answers by itself, one table from code to HTTP status,
 * and the RFC 9457 problem+json writer.
 */
import type { ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { lingerOnClose } from './linger.js'

/** code → [status, title, type slug] — the single mapping from failure to what the client sees */
export const PROBLEMS = {
  CLAYLB_BAD_REQUEST: [400, 'Bad Request', 'bad-request'],
  CLAYLB_INVALID_JSON: [400, 'Bad Request', 'invalid-json'],
  CLAYLB_PATH_NOT_NORMALISABLE: [400, 'Bad Request', 'path-not-normalisable'],
  CLAYLB_ADMIN_UNAUTHORIZED: [401, 'Unauthorized', 'admin-unauthorized'],
  CLAYLB_ADMIN_CROSS_SITE: [403, 'Forbidden', 'admin-cross-site'],
  CLAYLB_ACCESS_DENIED: [403, 'Forbidden', 'access-denied'],
  CLAYLB_NO_ROUTE: [404, 'Not Found', 'no-route'],
  CLAYLB_RELOAD_REFUSED: [409, 'Conflict', 'reload-refused'],
  CLAYLB_REQUEST_TIMEOUT: [408, 'Request Timeout', 'request-timeout'],
  CLAYLB_BODY_TOO_LARGE: [413, 'Content Too Large', 'body-too-large'],
  CLAYLB_SESSION_TOO_LARGE: [413, 'Content Too Large', 'session-too-large'],
  CLAYLB_SESSION_ENDED: [409, 'Conflict', 'session-ended'],
  CLAYLB_RATE_LIMITED: [429, 'Too Many Requests', 'rate-limited'],
  CLAYLB_HEADERS_TOO_LARGE: [431, 'Request Header Fields Too Large', 'headers-too-large'],
  CLAYLB_EXPECTATION_FAILED: [417, 'Expectation Failed', 'expectation-failed'],
  CLAYLB_NOT_IMPLEMENTED: [501, 'Not Implemented', 'not-implemented'],
  CLAYLB_UPSTREAM_FAILED: [502, 'Bad Gateway', 'upstream-failed'],
  CLAYLB_NO_HEALTHY_UPSTREAM: [503, 'Service Unavailable', 'no-healthy-upstream'],
  CLAYLB_POOL_OVERLOADED: [503, 'Service Unavailable', 'pool-overloaded'],
  CLAYLB_STATE_UNAVAILABLE: [503, 'Service Unavailable', 'state-unavailable'],
  CLAYLB_STATE_OUTCOME_UNKNOWN: [500, 'Internal Server Error', 'state-outcome-unknown'],
  CLAYLB_SHUTTING_DOWN: [503, 'Service Unavailable', 'shutting-down'],
  CLAYLB_UPSTREAM_TIMEOUT: [504, 'Gateway Timeout', 'upstream-timeout'],
  CLAYLB_HTTP_VERSION: [505, 'HTTP Version Not Supported', 'http-version-not-supported'],
  CLAYLB_IDEMPOTENCY_KEY_INVALID: [400, 'Bad Request', 'idempotency-key-invalid'],
  CLAYLB_IDEMPOTENCY_KEY_MISSING: [400, 'Bad Request', 'idempotency-key-missing'],
  CLAYLB_IDEMPOTENCY_IN_FLIGHT: [409, 'Conflict', 'idempotency-in-flight'],
  CLAYLB_IDEMPOTENCY_OUTCOME_UNKNOWN: [409, 'Conflict', 'outcome-unknown'],
  CLAYLB_IDEMPOTENCY_TOO_LARGE: [409, 'Conflict', 'response-too-large-to-replay'],
  CLAYLB_IDEMPOTENCY_MISMATCH: [422, 'Unprocessable Content', 'idempotency-key-mismatch'],
} as const satisfies Record<string, readonly [number, string, string]>

export type ProblemCode = keyof typeof PROBLEMS

/**
 * code → what it means: every error claylb's own processes raise that is not an answer to a client
 * (those are PROBLEMS above). The single registry: a new failure gets its code here, and its class
 * below extends ClaylbError with it, so `err.code` is always one of these.
 */
export const PROCESS_ERRORS = {
  CLAYLB_ERR_CONFIG: 'the config file or a flag does not validate',
  CLAYLB_ERR_REDIS_UNREACHABLE: 'the state tier (Redis) cannot be reached or started at start-up',
  CLAYLB_ERR_SESSION_SECRET: 'the session secret is missing or too short',
  CLAYLB_ERR_SESSION_USAGE: 'a session API used against its rules (a programming error in the app)',
  CLAYLB_ERR_APP_NOT_FOUND: 'workers.app names no module',
  CLAYLB_ERR_APP_MODULE: 'the worker app module exports no handler or factory',
  CLAYLB_ERR_WORKER_NOT_READY: 'a worker did not become ready in time',
  CLAYLB_ERR_ROLLOUT_ABANDONED: 'a new generation of workers did not become ready; the old one keeps serving',
} as const satisfies Record<string, string>

export type ProcessErrorCode = keyof typeof PROCESS_ERRORS

/** The base of every process error: a code from PROCESS_ERRORS, the subclass's name. */
export class ClaylbError extends Error {
  constructor (readonly code: ProcessErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
    this.name = new.target.name
  }
}

export const PROBLEM_TYPE_BASE = 'urn:claylb:problem:'

export class ProxyError extends Error {
  readonly status: number
  /** seconds, sent as `retry-after` */
  retryAfter?: number
  /**
   * what only the log may say (an upstream's address, a TLS error): the client's body carries the
   * message alone, so a problem never tells a client where the upstreams are or how their TLS failed
   */
  logDetail?: string
  /** more header lines of the answer, each ending in CRLF (a 429's RateLimit fields) */
  headerLines?: string
  constructor (readonly code: ProblemCode, detail: string, options?: { cause?: unknown, retryAfter?: number, logDetail?: string }) {
    super(detail, options?.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'ProxyError'
    this.status = PROBLEMS[code][0]
    if (options?.retryAfter !== undefined) this.retryAfter = options.retryAfter
    if (options?.logDetail !== undefined) this.logDetail = options.logDetail
  }
}

/** `requestId`: the request's id (requestId.header), an extension member a client can quote to support */
export function problemBody (code: ProblemCode, detail: string, requestId = ''): string {
  const [status, title, slug] = PROBLEMS[code]
  return JSON.stringify(requestId === '' ? { type: PROBLEM_TYPE_BASE + slug, title, status, detail } : { type: PROBLEM_TYPE_BASE + slug, title, status, detail, requestId })
}

/** Write a problem+json answer unless the response already started (then only destroy it). */
export function sendProblem (res: ServerResponse, err: ProxyError): void {
  if (res.headersSent) {
    res.destroy(err)
    return
  }
  const body = problemBody(err.code, err.message)
  const headers: Record<string, string | number> = {
    'content-type': 'application/problem+json',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  }
  if (err.retryAfter !== undefined) headers['retry-after'] = Math.max(0, Math.ceil(err.retryAfter))
  // after a framing problem or a refused body, the rest of the stream cannot be trusted: close.
  // Likewise when the answer comes before the request's body was all received (a 504 to a dripping
  // upload): otherwise the rest is parsed on as if it were a next request, and the request timeout
  // later answers that same request a second time.
  const req = res.req as ServerResponse['req'] | undefined
  const midBody = req !== undefined && !req.complete && (req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0)
  const untrusted = err.code === 'CLAYLB_BAD_REQUEST' || err.code === 'CLAYLB_NOT_IMPLEMENTED'
  if (untrusted || err.code === 'CLAYLB_BODY_TOO_LARGE' || midBody) {
    res.shouldKeepAlive = false
    // Node has already parsed (and will emit) requests pipelined behind this one: they must not run.
    // (req.socket is null once a request body stream was destroyed: res still has it.)
    const socket = (req?.socket ?? res.socket) as Socket | null | undefined
    // the client is still sending: close only once it has read this answer (shared/linger.ts)
    if (socket && midBody && !untrusted) lingerOnClose(socket, req)
  }
  res.writeHead(err.status, headers)
  res.end(body)
}
