/**
 * @module control/process/in-process
 * One process, both planes: the data plane serves here, over the control plane's own pools (their
 * hosts are judged where they are routed to), with no IPC.
 */
import type { Config } from '../../shared/config/schema.js'
import type { CertificateSet } from '../../shared/tls/certificates.js'
import type { ProcessRow } from '../../shared/process/protocol.js'
import type { DataPlane } from '../../data/data-plane.js'
import type { Counters } from '../../data/counting/counters.js'
import type { Host } from '../../data/upstream/host.js'
import type { DataPlaneHandle } from './data-plane-handle.js'

export class InProcessDataPlane implements DataPlaneHandle {
  readonly processes = undefined
  private readonly startedAt = new Date().toISOString()

  constructor (private readonly plane: DataPlane) {}

  get counters (): Counters { return this.plane.counters }
  get inflight (): number { return this.plane.core.inflight }

  prepare (): void {}

  listen (): Promise<string> {
    const c = this.plane.config.listen
    return this.plane.listen({ port: c.port, host: c.host, reusePort: false, handoff: false })
  }

  drain (acceptGraceMs: number): Promise<void> {
    return this.plane.drain(acceptGraceMs)
  }

  async refresh (): Promise<boolean> { return true }

  status (): ProcessRow[] {
    return [{
      pid: process.pid, requests: this.plane.counters.requestsTotal(), inflight: this.plane.core.inflight, connections: this.plane.engine.connections, startedAt: this.startedAt, snapshot: 0,
    }]
  }

  configChanged (config: Config, certificates: CertificateSet | undefined): void {
    this.plane.applyConfig(config, certificates)
  }

  reopenLogs (): void {
    this.plane.reopenLogs()
  }

  async drained (): Promise<void> {}

  hostIdle (host: Host, ms: number): Promise<boolean> {
    return host.waitIdle(ms)
  }
}
