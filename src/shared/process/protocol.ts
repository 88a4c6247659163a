/**
 * @module cores/protocol
 * The messages between the primary (control plane) and its proxy processes (data plane), over the
 * IPC channel node:cluster opens. Plain JSON; nothing here is sent per request: try outcomes travel
 * in batches, counters only when the primary asks (a scrape, /status, a drain).
 */
// types only: erased at build, so a proxy process loads no prom-client for them
import type { MetricObjectWithValues, MetricValue } from 'prom-client'
import type { Config } from '../config/schema.js'
import type { Snapshot } from './snapshot.js'

/** one series of a histogram as plain numbers: `buckets` per bound (not cumulative), last = above every bound */
export interface HistogramRow { label: string, buckets: ArrayLike<number>, sum: number, count: number }

/** what the route policies did in one process, as plain numbers (data/policy/tally counts it) */
export interface PolicyTally {
  /** redirects answered, by status */
  redirects: Record<string, number>
  rewrites: number
  /** answers compressed, by algorithm */
  compressed: Record<string, number>
  /** bytes in (from the upstream) and out (to the client) of compressed answers, by algorithm */
  compressedIn: Record<string, number>
  compressedOut: Record<string, number>
}

/** One process's request-path counters as plain numbers (a proxy process answers the primary's scrape with it). */
export interface CountersExport {
  /** per `upstream` label: codes (6), buckets, durationSum, count, tries */
  hosts: Array<{ upstream: string, codes: number[], buckets: number[], durationSum: number, count: number, tries: number[] }>
  retried: Record<string, number>
  overflow: number
  /** pool → limit → refusals (routing/pool-limits) */
  overloaded: Record<string, Record<string, number>>
  inflight: number
  idempotency: Record<string, number>
  idempotencyLeaseExpiries: number
  idempotencyUnknownOutcomes: number
  sessionStore: Record<string, number>
  redisErrors: number
  /** claylb_redis_command_duration_seconds, one row per command (label = command) */
  redisCommands: HistogramRow[]
  /** redirects, rewrites, compressed answers (data/policy/tally) */
  policy: PolicyTally
}

/** one process's default metrics (process_*, nodejs_*) as prom-client's JSON (getMetricsAsJSON), labelled by its pid on the primary */
export type ProcessMetricsExport = Array<MetricObjectWithValues<MetricValue<string>>>

export interface ListenSpec {
  host: string
  port: number
  /** bind its own SO_REUSEPORT socket (else node:cluster shares the primary's handle) */
  reusePort: boolean
  /** bind nothing: the primary accepts and sends each connection (`connection`; cores/handoff.ts) */
  handoff: boolean
}

export type ToProxy =
  | { type: 'boot', config: Config, listen: ListenSpec, snapshot: Snapshot }
  | { type: 'snapshot', snapshot: Snapshot }
  /** a reload the primary applied (pools, routes, limits), with the pools' hosts after it: applied in one step */
  | { type: 'config', config: Config, snapshot: Snapshot }
  /** `process`: include its default metrics (a /metrics scrape; /status and drains do without) */
  | { type: 'stats', id: number, process: boolean }
  /** drain: accept for acceptGraceMs more (shutdown.acceptGraceMs, or 0 when the primary says so), then stop */
  | { type: 'stop', acceptGraceMs: number }
  /** a connection the primary accepted, sent with its socket (accept mode `handoff`) */
  | { type: 'connection' }
  /** SIGUSR1 reached the primary: open the access log file again (logrotate renamed it) */
  | { type: 'reopen-logs' }

/** what /status shows of one proxy process */
export interface ProcessRow {
  pid: number
  /** requests answered by this process since it started */
  requests: number
  inflight: number
  connections: number
  startedAt: string
  /** the snapshot version it routes with */
  snapshot: number
}

export interface ProcessStats extends ProcessRow {
  /** per host id: [requests sent, in flight] */
  hosts: Array<[string, number, number]>
  counters: CountersExport
  /** its default metrics (process_*, nodejs_*), when asked */
  processMetrics?: ProcessMetricsExport
}

export type FromProxy =
  /** its module graph is loaded and it listens for messages (one sent before that would be lost) */
  | { type: 'hello' }
  | { type: 'listening', port: number }
  | { type: 'applied', version: number }
  /** try outcomes since the last batch: host id, OUTCOME_INDEX, host id, OUTCOME_INDEX, ... */
  | { type: 'tries', events: Array<string | number> }
  | { type: 'stats', id: number, stats: ProcessStats }
  | { type: 'boot-failed', message: string }

/** the proxy process's entry (node:cluster runs it; it is never a worker of the app) */
export const PROXY_PROCESS_ENV = 'CLAYLB_PROXY_PROCESS'
