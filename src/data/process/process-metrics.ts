/**
 * @module data/process/process-metrics
 * A proxy process's default metrics (process_*, nodejs_*), which the primary labels by pid. prom-client
 * is loaded, and its collectors started, on the first scrape that asks for them, not at start: an
 * idle proxy process holds none of it (about 12 MB on Node 24). Counters that prom-client keeps itself
 * (nodejs_gc_duration_seconds, the event loop lag) begin at that first scrape; those read from the
 * process (CPU, memory, handles, start time) are whole from the first.
 */
import type { Registry } from 'prom-client'
import { promClient } from '../../shared/lazy-modules.js'
import type { ProcessMetricsExport } from '../../shared/process/protocol.js'

let registry: Registry | undefined

export async function processMetrics (prefix: string): Promise<ProcessMetricsExport> {
  if (registry === undefined) {
    const p = promClient()
    registry = new p.Registry()
    p.collectDefaultMetrics({ register: registry, prefix })
  }
  return await registry.getMetricsAsJSON()
}
