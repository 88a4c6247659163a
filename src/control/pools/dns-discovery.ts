/**
 * @module upstream/dns-discovery
 * One `dns` upstream kept resolved (nginx's `resolve`, HAProxy's `resolvers`, Envoy's STRICT_DNS):
 * "name:port" → its A and AAAA records, or an SRV name → the targets of its best priority (each
 * target's A/AAAA, with the SRV port and weight). It resolves again when the records' TTL says, within
 * `dns.minRefreshMs` and the entry's `refreshMs` (else `dns.maxRefreshMs`). A failed or empty answer
 * keeps the last good set (a DNS outage never empties a pool), is logged once per streak and counted.
 * The pool turns each set into hosts (routing/pools.ts): new addresses are added, gone ones drained.
 */
import { Resolver } from 'node:dns/promises'
import type { DnsUpstream, StaticUpstream } from '../../shared/config/schema.js'
import type { Logger } from '../../shared/log.js'

export interface DnsSettings {
  servers: readonly string[]
  minRefreshMs: number
  maxRefreshMs: number
  timeoutMs: number
}

/** what resolving counts (Metrics reads it: claylb_dns_resolutions_total) */
export interface DnsTally { ok: number, failed: number }

interface Found { address: string, port: number, weight: number, ttl: number }

export class DnsDiscovery {
  /** the last good set, as upstreams of the pool (empty until the first answer) */
  found: StaticUpstream[] = []
  readonly tally: DnsTally = { ok: 0, failed: 0 }
  private readonly resolver: Resolver
  private timer: NodeJS.Timeout | undefined
  private closed = false
  private failing = false
  /** resolves after the first attempt, whatever its outcome */
  readonly first: Promise<void>

  constructor (readonly entry: DnsUpstream, private readonly settings: DnsSettings, private readonly logger: Logger, private readonly onChange: () => void) {
    this.resolver = new Resolver({ timeout: settings.timeoutMs, tries: 2 })
    if (settings.servers.length > 0) this.resolver.setServers([...settings.servers])
    this.first = this.resolveOnce()
  }

  private get maxMs (): number {
    return Math.max(this.settings.minRefreshMs, this.entry.refreshMs ?? this.settings.maxRefreshMs)
  }

  private async resolveOnce (): Promise<void> {
    let next = this.maxMs
    try {
      const found = await this.lookup()
      if (this.closed) return
      if (found.length === 0) throw new Error('no address in the answer')
      this.tally.ok++
      if (this.failing) this.logger.info({ dns: this.entry.dns, addresses: found.length }, 'dns upstream resolves again')
      this.failing = false
      const minTtlMs = Math.min(...found.map((f) => f.ttl)) * 1000
      next = Math.min(this.maxMs, Math.max(this.settings.minRefreshMs, minTtlMs))
      const upstreams = found.map((f): StaticUpstream => {
        const host = f.address.includes(':') ? `[${f.address}]` : f.address
        return { url: `${this.entry.scheme}://${host}:${f.port}`, weight: f.weight, id: `${this.entry.dns}/${host}:${f.port}` }
      }).sort((a, b) => a.id!.localeCompare(b.id!))
      if (JSON.stringify(upstreams) !== JSON.stringify(this.found)) {
        this.found = upstreams
        this.logger.info({ dns: this.entry.dns, addresses: upstreams.map((u) => u.id) }, 'dns upstream resolved: hosts updated')
        this.onChange()
      }
    } catch (err) {
      if (this.closed) return
      this.tally.failed++
      // the last good set stays; a failing name is retried at the short bound
      next = this.settings.minRefreshMs
      if (!this.failing) this.logger.warn({ dns: this.entry.dns, error: (err as Error).message, kept: this.found.length }, 'dns upstream did not resolve: keeping the last good set')
      this.failing = true
    }
    if (this.closed) return
    this.timer = setTimeout(() => { void this.resolveOnce() }, next)
    this.timer.unref()
  }

  private async lookup (): Promise<Found[]> {
    const e = this.entry
    if (!e.srv) {
      const i = e.dns.lastIndexOf(':')
      return this.addresses(e.dns.slice(0, i), Number(e.dns.slice(i + 1)), e.weight)
    }
    const records = await this.resolver.resolveSrv(e.dns)
    if (records.length === 0) return []
    // the best (lowest) priority only, as RFC 2782 says; a weight of 0 still gets a share
    const best = Math.min(...records.map((r) => r.priority))
    const chosen = records.filter((r) => r.priority === best)
    // Node's resolveSrv gives no TTL: the targets' address TTLs (and refreshMs) bound the refresh
    const sets = await Promise.all(chosen.map((r) => this.addresses(r.name, r.port, Math.max(1, r.weight) * e.weight)))
    return sets.flat()
  }

  /** A and AAAA of `name`; one family without records is no failure, both failing is */
  private async addresses (name: string, port: number, weight: number): Promise<Found[]> {
    const [v4, v6] = await Promise.allSettled([
      this.resolver.resolve4(name, { ttl: true }),
      this.resolver.resolve6(name, { ttl: true }),
    ])
    if (v4.status === 'rejected' && v6.status === 'rejected') throw v4.reason as Error
    const out: Found[] = []
    for (const r of [v4, v6]) {
      if (r.status === 'fulfilled') for (const a of r.value) out.push({ address: a.address, port, weight, ttl: a.ttl })
    }
    return out
  }

  close (): void {
    this.closed = true
    clearTimeout(this.timer)
    this.resolver.cancel()
  }
}
