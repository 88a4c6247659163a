/**
 * @module cores/protocol
 * The messages between the primary (control plane) and its proxy processes (data plane), over the
 * IPC channel node:cluster opens. Plain JSON; nothing here is sent per request: try outcomes travel
 * in batches, counters only when the primary asks (a scrape, /status, a drain).
 */
import type { Config } from '../config/schema.js'
import type { CountersExport, ProcessMetricsExport } from '../metrics/metrics.js'
import type { Snapshot } from './snapshot.js'

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
  /** a reload the primary applied (pools, routes, limits): sent before the snapshot that follows it */
  | { type: 'config', config: Config }
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
