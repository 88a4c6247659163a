/**
 * @module control/process/data-plane-handle
 * The data plane as the control plane drives it, wherever it runs: in this process
 * (control/process/in-process.ts) or in proxy processes (control/process/primary.ts).
 */
import type { Config } from '../../shared/config/schema.js'
import type { CertificateSet } from '../../shared/tls/certificates.js'
import type { ProcessRow } from '../../shared/process/protocol.js'
import type { Counters } from '../../data/counting/counters.js'
import type { PoolRegistry } from '../pools/pools.js'
import type { ProcessesSource } from '../metrics/metrics.js'
import type { HostDrainWatch } from '../supervisor/supervisor.js'

/** what a data plane handle sees of the control plane that made it */
export interface ControlView {
  readonly config: Config
  readonly pools: PoolRegistry
  readonly generation: number
}

export interface DataPlaneHandle extends HostDrainWatch {
  /** this process's counters (bound to the pools' hosts; a primary's count only ejections) */
  readonly counters: Counters
  /** the proxy processes, for the metrics; undefined: this process serves */
  readonly processes: ProcessesSource | undefined
  /** requests in flight in this process */
  readonly inflight: number
  /** start loading what serves (proxy processes: fork them while the workers start); none listens yet */
  prepare (): void
  /** start serving; resolves with the proxy's URL once the port accepts only what can be served */
  listen (): Promise<string>
  /** accept for `acceptGraceMs` more, then stop, finish the requests in flight, close */
  drain (acceptGraceMs: number): Promise<void>
  /** fetch every process's counters (before a scrape or /status); `processMetrics`: their default metrics too */
  refresh (o?: { processMetrics: boolean, waitMs?: number }): Promise<boolean>
  status (): ProcessRow[]
  /** a reload applied `config` to the pools: the routes, limits and certificates follow */
  configChanged (config: Config, certificates: CertificateSet | undefined): void
  /** SIGUSR1: every process serving opens its access log file again */
  reopenLogs (): void
}
