/**
 * A Redis Cluster of 3 primaries + 3 replicas, one redis-server per host of a Network, built with
 * redis-cli --cluster create; a primary can be killed (its replica is promoted) and started again
 * (it rejoins as a replica of the promoted one).
 */
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ChildProcess } from 'node:child_process'
import { requireRedisServer } from '../helpers/redis.js'
import { sleep } from '../helpers/http.js'
import type { Network } from './netns.js'

export const REDIS_PORT = 6379

export interface ClusterNode { host: string, ip: string, id: string, role: 'master' | 'slave', slots: string }

export class NetRedisCluster {
  readonly #net: Network
  readonly #hosts: string[]
  readonly #procs = new Map<string, ChildProcess>()
  readonly #dirs = new Map<string, string>()
  readonly nodeTimeoutMs: number

  constructor (net: Network, hosts: string[], nodeTimeoutMs = 1500) {
    requireRedisServer()
    this.#net = net
    this.#hosts = hosts
    this.nodeTimeoutMs = nodeTimeoutMs
  }

  get urls (): string[] {
    return this.#hosts.map((h) => `redis://${this.#net.host(h).ip}:${REDIS_PORT}`)
  }

  #start (host: string): void {
    let dir = this.#dirs.get(host)
    if (dir === undefined) {
      dir = mkdtempSync(join(tmpdir(), `claylb-netredis-${host}-`))
      this.#dirs.set(host, dir)
    }
    const ip = this.#net.host(host).ip
    const p = this.#net.spawn(host, 'redis-server', [
      '--port', String(REDIS_PORT), '--bind', ip, '--protected-mode', 'no', '--dir', dir,
      '--save', '', '--appendonly', 'no', '--daemonize', 'no',
      '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', String(this.nodeTimeoutMs),
      '--cluster-announce-ip', ip,
    ], { stdio: 'ignore' })
    this.#procs.set(host, p)
  }

  #alive (host: string): boolean {
    const p = this.#procs.get(host)
    return p !== undefined && p.exitCode === null && p.signalCode === null
  }

  cli (host: string, args: string[], via = host): string {
    return this.#net.exec(via, 'redis-cli', ['-h', this.#net.host(host).ip, '-p', String(REDIS_PORT), ...args])
  }

  async #waitUp (host: string): Promise<void> {
    const until = Date.now() + 15_000
    for (;;) {
      try { if (this.cli(host, ['ping']).trim() === 'PONG') return } catch { /* not yet */ }
      if (Date.now() > until) throw new Error(`redis on ${host} did not come up`)
      await sleep(100)
    }
  }

  async start (): Promise<void> {
    for (const h of this.#hosts) this.#start(h)
    for (const h of this.#hosts) await this.#waitUp(h)
    const first = this.#hosts[0]!
    this.#net.exec(first, 'redis-cli', ['--cluster', 'create', ...this.#hosts.map((h) => `${this.#net.host(h).ip}:${REDIS_PORT}`), '--cluster-replicas', '1', '--cluster-yes'])
    await this.waitHealthy(30_000)
  }

  /** The cluster as one node sees it. */
  nodes (via?: string): ClusterNode[] {
    const asker = via ?? this.#hosts.find((h) => this.#alive(h))!
    const byIp = new Map([...this.#net.hosts.values()].map((h) => [h.ip, h.name]))
    return this.cli(asker, ['cluster', 'nodes']).trim().split('\n').filter((l) => !l.includes('fail') && !l.includes('noaddr')).map((l) => {
      const [id, addr, flags, , , , , , ...slots] = l.split(' ')
      const ip = addr!.split(':')[0]!
      return { host: byIp.get(ip) ?? ip, ip, id: id!, role: flags!.includes('master') ? 'master' : 'slave', slots: slots.join(' ') }
    })
  }

  /** Every live node says cluster_state:ok and there are 3 primaries with slots, each with a replica. */
  async waitHealthy (timeoutMs: number): Promise<void> {
    const until = Date.now() + timeoutMs
    let last = ''
    for (;;) {
      try {
        const live = this.#hosts.filter((h) => this.#alive(h))
        const ok = live.every((h) => this.cli(h, ['cluster', 'info']).includes('cluster_state:ok'))
        const nodes = this.nodes()
        const masters = nodes.filter((n) => n.role === 'master' && n.slots !== '')
        last = `${live.length} live, ok=${ok}, ${masters.length} primaries with slots, ${nodes.length - masters.length} others`
        if (ok && masters.length === 3 && nodes.length === live.length) return
      } catch (err) { last = (err as Error).message }
      if (Date.now() > until) throw new Error(`redis cluster not healthy: ${last}`)
      await sleep(200)
    }
  }

  /** The host of the primary serving a key's slot. */
  primaryOf (key: string): string {
    const slot = Number(this.cli(this.#hosts[0]!, ['cluster', 'keyslot', key]).trim())
    for (const n of this.nodes()) {
      if (n.role !== 'master') continue
      for (const range of n.slots.split(' ')) {
        const [a, b] = range.split('-').map(Number)
        if (slot >= a! && slot <= (b ?? a)!) return n.host
      }
    }
    throw new Error(`no primary serves slot ${slot}`)
  }

  /** SIGKILL a node (a crash: no clean shutdown, no last replication). */
  async kill (host: string): Promise<void> {
    const p = this.#procs.get(host)
    if (p === undefined || !this.#alive(host)) return
    await new Promise<void>((resolve) => { p.once('exit', () => resolve()); p.kill('SIGKILL') })
  }

  /** Start a killed node again with its nodes.conf: it rejoins the cluster. */
  async restart (host: string): Promise<void> {
    this.#start(host)
    await this.#waitUp(host)
  }

  /** The replica that took over from the killed `host`: another node, now primary of its slots. */
  async waitPromotion (host: string, slotsOf: string, timeoutMs: number): Promise<string> {
    const until = Date.now() + timeoutMs
    for (;;) {
      try {
        const promoted = this.nodes().find((n) => n.role === 'master' && n.slots === slotsOf && n.host !== host)
        if (promoted !== undefined) return promoted.host
      } catch { /* the asker may be the dead one's neighbour mid-failover */ }
      if (Date.now() > until) throw new Error(`no replica took over slots ${slotsOf}`)
      await sleep(100)
    }
  }
}
