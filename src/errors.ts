/**
 * @module errors
 * One error type for everything the proxy answers by itself, one table from code to HTTP status,
 * and the RFC 9457 problem+json writer.
 */
import type { ServerResponse } from 'node:http'

/** code → [status, title, type slug] — the single mapping from failure to what the client sees */
export const PROBLEMS = {
  CLAYLB_BAD_REQUEST: [400, 'Bad Request', 'bad-request'],
  CLAYLB_BODY_TOO_LARGE: [413, 'Content Too Large', 'body-too-large'],
  CLAYLB_SESSION_TOO_LARGE: [413, 'Content Too Large', 'session-too-large'],
  CLAYLB_HEADERS_TOO_LARGE: [431, 'Request Header Fields Too Large', 'headers-too-large'],
  CLAYLB_UPSTREAM_FAILED: [502, 'Bad Gateway', 'upstream-failed'],
  CLAYLB_NO_HEALTHY_UPSTREAM: [503, 'Service Unavailable', 'no-healthy-upstream'],
  CLAYLB_STATE_UNAVAILABLE: [503, 'Service Unavailable', 'state-unavailable'],
  CLAYLB_SHUTTING_DOWN: [503, 'Service Unavailable', 'shutting-down'],
  CLAYLB_UPSTREAM_TIMEOUT: [504, 'Gateway Timeout', 'upstream-timeout'],
  CLAYLB_IDEMPOTENCY_KEY_INVALID: [400, 'Bad Request', 'idempotency-key-invalid'],
  CLAYLB_IDEMPOTENCY_KEY_MISSING: [400, 'Bad Request', 'idempotency-key-missing'],
  CLAYLB_IDEMPOTENCY_IN_FLIGHT: [409, 'Conflict', 'idempotency-in-flight'],
  CLAYLB_IDEMPOTENCY_OUTCOME_UNKNOWN: [409, 'Conflict', 'outcome-unknown'],
  CLAYLB_IDEMPOTENCY_TOO_LARGE: [409, 'Conflict', 'response-too-large-to-replay'],
  CLAYLB_IDEMPOTENCY_MISMATCH: [422, 'Unprocessable Content', 'idempotency-key-mismatch'],
} as const satisfies Record<string, readonly [number, string, string]>

export type ProblemCode = keyof typeof PROBLEMS

export const PROBLEM_TYPE_BASE = 'urn:claylb:problem:'

export class ProxyError extends Error {
  readonly status: number
  /** seconds, sent as `retry-after` */
  retryAfter?: number
  constructor (readonly code: ProblemCode, detail: string, options?: { cause?: unknown, retryAfter?: number }) {
    super(detail, options?.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'ProxyError'
    this.status = PROBLEMS[code][0]
    if (options?.retryAfter !== undefined) this.retryAfter = options.retryAfter
  }
}

export function problemBody (code: ProblemCode, detail: string): string {
  const [status, title, slug] = PROBLEMS[code]
  return JSON.stringify({ type: PROBLEM_TYPE_BASE + slug, title, status, detail })
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
  // after a framing problem or a refused body, the rest of the stream cannot be trusted: close
  if (err.code === 'CLAYLB_BODY_TOO_LARGE' || err.code === 'CLAYLB_BAD_REQUEST') res.shouldKeepAlive = false
  res.writeHead(err.status, headers)
  res.end(body)
}

/** The same answer as raw bytes, for sockets that never became an http.ServerResponse. */
export function rawProblem (code: ProblemCode, detail: string): string {
  const [status, title] = PROBLEMS[code]
  const body = problemBody(code, detail)
  return `HTTP/1.1 ${status} ${title}\r\ncontent-type: application/problem+json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`
}
