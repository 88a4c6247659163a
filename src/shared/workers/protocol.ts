/**
 * @module workers/protocol
 * What the supervisor and a worker process tell each other: the boot description (an environment
 * variable, so the worker needs no round trip before it starts) and the IPC messages.
 * Type-only imports: the worker runtime must not load the config machinery.
 */
import type { Config } from '../config/schema.js'

/** the environment variable holding the JSON WorkerBoot */
export const WORKER_BOOT_ENV = 'CLAYLB_WORKER_BOOT'

export interface WorkerBoot {
  id: string
  slot: number
  generation: number
  /** absolute path of the app module */
  appPath: string
  /** the Unix socket to listen on */
  socketPath: string
  /** the worker's own empty working directory */
  tmpdir: string
  /** ask to be recycled after this many requests (0: never) */
  recycleAfterRequests: number
  config: WorkerConfig
}

/**
 * The part of claylb's config a worker (and the app in it, as `ctx.config`) is given: what it needs to
 * reach the state tier, log, answer probes and know its pool. Never admin.* (the admin token), the
 * listeners, the upstreams or anything else of the proxy's.
 */
/** a worker's readiness probe when healthCheck.path is unset (a static upstream then gets a TCP check) */
export const WORKER_HEALTH_PATH = '/healthz'

export interface WorkerConfig {
  readonly redis: Config['redis']
  readonly session: Config['session']
  readonly log: { readonly level: Config['log']['level'] }
  readonly healthCheck: { readonly path: string }
  readonly workers: { readonly count: number, readonly app: string, readonly faults: boolean }
  /** how long claylb keeps a key's record: an app deduping on claylb-idempotency-id keeps its ids as long */
  readonly idempotency: { readonly ttlSeconds: number }
}

export function workerConfigOf (c: Config): WorkerConfig {
  return {
    redis: c.redis,
    session: c.session,
    log: { level: c.log.level },
    healthCheck: { path: c.healthCheck.path ?? WORKER_HEALTH_PATH },
    workers: { count: c.workers.count, app: c.workers.app, faults: c.workers.faults },
    idempotency: { ttlSeconds: c.idempotency.ttlSeconds },
  }
}

/** worker → supervisor */
export type WorkerMessage =
  | { type: 'ready' }
  /** the worker served its request quota and asks to be replaced (`requests` never counts health probes) */
  | { type: 'recycle', requests: number }
  /** sent once the worker drained, just before it exits */
  | { type: 'stopped', requests: number, probes: number }
  /** the worker's process sample, every WORKER_METRICS_INTERVAL_MS: the scrape reads the last one, never waits */
  | { type: 'metrics', sample: WorkerProcessSample }

export const WORKER_METRICS_INTERVAL_MS = 2000

export interface WorkerProcessSample {
  cpuSecondsTotal: number
  residentMemoryBytes: number
  heapUsedBytes: number
  /** mean event-loop delay over the last interval */
  eventLoopLagSeconds: number
  /** failed session store operations in this worker so far (the session runtime fills it) */
  sessionStoreErrors?: number
}
