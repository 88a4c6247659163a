/**
 * @module cores/count
 * How many proxy processes a config runs, and how they share the port.
 *
 * `auto`: every CPU available to the process (os.availableParallelism(), which honours the CPU
 * affinity mask) when the upstreams are elsewhere, as nginx's `worker_processes auto`. When claylb
 * also runs the app (workers.count > 0) the app needs the cores too, and the proxy's work per request
 * is a fraction of the app's: the proxy then takes at most half the CPUs, and never more processes
 * than there are workers. On this 2-core machine that is 2 with static upstreams, 1 with workers.
 */
import { availableParallelism } from 'node:os'
import type { Config } from '../../shared/config/schema.js'

export function proxyProcessCount (config: Config, cpus = availableParallelism()): number {
  const p = config.listen.processes
  if (p !== 'auto') return p
  const workers = config.workers.count
  if (workers === 0) return Math.max(1, cpus)
  return Math.max(1, Math.min(Math.floor(cpus / 2), workers))
}

/**
 * `reusePort` on listen() (SO_REUSEPORT: one listening socket per process, the kernel spreads the
 * connections) arrived in Node 22.12 and 23.1; older Nodes share the primary's handle (node:cluster).
 */
export function hasReusePort (version = process.versions.node): boolean {
  const [major, minor] = version.split('.').map(Number) as [number, number]
  return major > 22 || (major === 22 && minor >= 12)
}
