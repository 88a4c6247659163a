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

/** one process's counters of one upstream in one pool (or of one route: `upstream` is the route's name) as plain numbers */
export interface HostCountersExport { upstream: string, pool: string, codes: number[], buckets: number[], durationSum: number, count: number, tries: number[] }

/** One process's request-path counters as plain numbers (a proxy process answers the primary's scrape with it). */

export interface CountersExport {
  /** per `pool` and `upstream` label: codes (6), buckets, durationSum, count, tries */
  hosts: HostCountersExport[]
  /** per route (`upstream` holds its name) and its pool ('' for a redirect route) */
  routes: HostCountersExport[]
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
  /** claylb_rate_limited_total by limit */
  rateLimited: Record<string, number>
  accessDenied: number
  /** claylb_rate_limit_store_takes_total by limit (the leases asked of Redis or the primary) */
  limitTakes: Record<string, number>
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
  /**
   * `ticketKeys`: the TLS session ticket keys (48 bytes, base64) every process serves with, made once
   * by the primary, so a client resumes whichever process its next connection lands on
   */
  | { type: 'boot', config: Config, listen: ListenSpec, snapshot: Snapshot, ticketKeys: string }
  | { type: 'snapshot', snapshot: Snapshot }
  /** a reload the primary applied (pools, routes, limits), with the pools' hosts after it: applied in one step */
  | { type: 'config', config: Config, snapshot: Snapshot }
  /** `process`: include its default metrics (a /metrics scrape; /status and drains do without) */
  | { type: 'stats', id: number, process: boolean }
  /** drain: accept for acceptGraceMs more (shutdown.acceptGraceMs, or 0 when the primary says so), then stop */
  | { type: 'stop', acceptGraceMs: number }
  /** a connection the primary accepted, sent with its socket (accept mode `handoff`) */
  | { type: 'connection' }
  /** a lease of a `local` rate limit's tokens (control/process/token-lease.ts) */
  | TakeAnswer
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
  /** per host key (pool/id): [requests sent, in flight] */
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
  /** try outcomes since the last batch: host key (pool/id), OUTCOME_INDEX, host key, OUTCOME_INDEX, ... */
  | { type: 'tries', events: Array<string | number> }
  | { type: 'stats', id: number, stats: ProcessStats }
  | { type: 'boot-failed', message: string }
  /** tokens of a `local` rate limit, asked when a key's lease runs low */
  | TakeRequest

/** the proxy process's entry (node:cluster runs it; it is never a worker of the app) */
export const PROXY_PROCESS_ENV = 'CLAYLB_PROXY_PROCESS'

/** a proxy process asks the primary for tokens of a `local` rate limit (data/policy/primary-tokens.ts) */
export interface TakeRequest { type: 'take', id: number, limit: string, key: string, capacity: number, perMs: number, want: number }
/** the primary's answer: how many were taken, and the ms until the rest would be there */
export interface TakeAnswer { type: 'taken', id: number, got: number, waitMs: number }
