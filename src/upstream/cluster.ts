/**
 * @module upstream/cluster
 * The set of hosts requests may go to (Envoy's "cluster"). Static upstreams and spawned workers are
 * both hosts here; the balancer picks from `hosts`.
 */
import type { Host } from './host.js'

export class Cluster {
  /** replaced (never mutated) on change, so a pick in progress sees a consistent list */
  hosts: readonly Host[] = []
  private listeners: Array<() => void> = []

  add (host: Host): void {
    this.hosts = [...this.hosts, host]
    this.changed()
  }

  remove (host: Host): boolean {
    const next = this.hosts.filter((h) => h !== host)
    if (next.length === this.hosts.length) return false
    this.hosts = next
    this.changed()
    return true
  }

  get (id: string): Host | undefined {
    return this.hosts.find((h) => h.id === id)
  }

  availableCount (): number {
    let n = 0
    for (const h of this.hosts) if (h.available) n++
    return n
  }

  onChange (fn: () => void): void {
    this.listeners.push(fn)
  }

  private changed (): void {
    for (const fn of this.listeners) fn()
  }

  async close (): Promise<void> {
    const hosts = this.hosts
    this.hosts = []
    await Promise.all(hosts.map((h) => h.close()))
  }
}
