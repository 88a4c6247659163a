/**
 * @module shared/defaults
 * Defaults that the library APIs share with the config schema (createSessionStore, the idempotency
 * middleware): plain values, so a worker or an app using the middleware loads no schema machinery.
 * The schema takes its defaults for these keys from here; nothing else spells them out.
 */
export const REDIS_KEY_PREFIX = 'claylb:'

export const SESSION_DEFAULTS = {
  cookie: 'sid',
  secretEnv: 'SESSION_SECRET',
  ttlSeconds: 1800,
  maxBytes: 65_536,
  secure: 'auto',
} as const

/** limits.maxBodyBytes: the largest request body (the middleware reads a keyed body whole, up to it) */
export const MAX_BODY_BYTES = 10_485_760

export const IDEMPOTENCY_DEFAULTS = {
  ttlSeconds: 86_400,
  lockSeconds: 30,
  maxResponseBytes: 1_048_576,
  /** the largest keyed request body (its JSON is canonicalised to fingerprint it) */
  maxBodyBytes: 1_048_576,
  onConcurrent: 'conflict',
  releaseStatuses: [429, 503] as readonly number[],
  /** how long one WAIT for replicas may take (idempotency.waitTimeoutMs) */
  waitTimeoutMs: 250,
} as const

/**
 * shutdown.acceptGraceMs: how long the port keeps accepting after SIGTERM while /readyz says 503. A
 * balancer stops sending once its health checks saw the 503 enough times: HAProxy's defaults (inter
 * 2 s, fall 3) take 6 s, claylb's own (2 s × 2, less jitter) 4 s, and Kubernetes needs a few seconds to
 * take a terminating pod out of its endpoints everywhere. 10 s covers each with room for a busy checker.
 */
export const ACCEPT_GRACE_MS = 10_000
