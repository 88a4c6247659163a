/**
 * A small real network on this machine: one Linux network namespace per host, each with a veth pair
 * to a bridge that lives in a namespace of its own (the machine's own namespace is never touched), and
 * the faults a network has: a host cut from some addresses (iptables drops, both ways), a degraded link
 * (tc netem delay + loss where the kernel has it, else a tbf-throttled queue + iptables random loss).
 * Every namespace made is deleted by destroy(), its processes killed first.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process'

const INSTALL = {
  ip: 'apt-get install -y iproute2',
  iptables: 'apt-get install -y iptables',
  tc: 'apt-get install -y iproute2',
} as const

/** A missing tool is a failure that says how to install it. */
export function requireNetTools (): void {
  for (const [tool, hint] of Object.entries(INSTALL)) {
    const r = spawnSync(tool, ['-V'], { encoding: 'utf8' })
    if (r.error !== undefined) throw new Error(`${tool} is not on the PATH (needed by the multi-host test): ${hint}`)
  }
}

/** Why the kernel refuses network namespaces here, or undefined when it allows them. */
export function namespacesRefused (): string | undefined {
  const name = `clbprobe${process.pid}`
  const r = spawnSync('ip', ['netns', 'add', name], { encoding: 'utf8' })
  if (r.status !== 0) return `the kernel refuses network namespaces (ip netns add: ${r.stderr.trim()})`
  spawnSync('ip', ['netns', 'del', name])
  return undefined
}

const run = (args: string[], input?: string): string => {
  try {
    return execFileSync(args[0]!, args.slice(1), { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] })
  } catch (err) {
    const e = err as { stderr?: string, message: string }
    throw new Error(`${args.join(' ')}: ${e.stderr?.trim() || e.message}`)
  }
}

export interface Host { name: string, ns: string, ip: string }

const killAll = (ns: string): void => {
  const pids = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean)
  for (const pid of pids) { try { process.kill(Number(pid), 'SIGKILL') } catch { /* gone already */ } }
}

/**
 * Namespaces a run that was killed outright (no teardown) left behind, with their processes: every
 * `clb<pid>-…` whose pid is no longer alive. Returns the names removed.
 */
export function sweepStale (): string[] {
  const removed: string[] = []
  const all = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.split('\n').map((l) => l.split(' ')[0]!)
  for (const ns of all) {
    const pid = /^clb(\d+)-/.exec(ns)?.[1]
    if (pid === undefined) continue
    try { process.kill(Number(pid), 0); continue } catch { /* its run is gone */ }
    killAll(ns)
    if (spawnSync('ip', ['netns', 'del', ns]).status === 0) removed.push(ns)
  }
  return removed
}

export class Network {
  readonly hosts = new Map<string, Host>()
  readonly #prefix: string
  readonly #switch: string
  readonly #subnet: string
  #ports = 0
  #procs = new Set<ChildProcess>()
  /** which link degradation the kernel allowed, once one was applied */
  degradedWith: 'netem' | 'tbf+iptables' | undefined

  /** subnet: the first three octets, e.g. "10.77.0" (a /24 that exists only inside these namespaces) */
  constructor (subnet = '10.77.0') {
    this.#prefix = `clb${process.pid}`
    this.#subnet = subnet
    this.#switch = `${this.#prefix}-sw`
    run(['ip', 'netns', 'add', this.#switch])
    run(['ip', '-n', this.#switch, 'link', 'add', 'br0', 'type', 'bridge'])
    run(['ip', '-n', this.#switch, 'link', 'set', 'br0', 'up'])
  }

  /** A host on the bridge with address <subnet>.<octet>. */
  addHost (name: string, octet: number): Host {
    const ns = `${this.#prefix}-${name}`
    const ip = `${this.#subnet}.${octet}`
    const port = `p${++this.#ports}`
    run(['ip', 'netns', 'add', ns])
    run(['ip', '-n', this.#switch, 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns])
    run(['ip', '-n', this.#switch, 'link', 'set', port, 'master', 'br0', 'up'])
    run(['ip', '-n', ns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0'])
    run(['ip', '-n', ns, 'link', 'set', 'eth0', 'up'])
    run(['ip', '-n', ns, 'link', 'set', 'lo', 'up'])
    const host = { name, ns, ip }
    this.hosts.set(name, host)
    return host
  }

  host (name: string): Host {
    const h = this.hosts.get(name)
    if (h === undefined) throw new Error(`no host ${name}`)
    return h
  }

  /** A process on a host (killed by destroy() at the latest). */
  spawn (host: string, cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
    const p = spawn('ip', ['netns', 'exec', this.host(host).ns, cmd, ...args], opts)
    this.#procs.add(p)
    p.once('exit', () => this.#procs.delete(p))
    return p
  }

  /** A command on a host, its output. */
  exec (host: string, cmd: string, args: string[]): string {
    return run(['ip', 'netns', 'exec', this.host(host).ns, cmd, ...args])
  }

  /** An iptables chain of its own in the host's namespace, jumped to from INPUT and OUTPUT. */
  #chain (host: string, chain: string, rules: string[][]): void {
    const ipt = (...args: string[]): string => run(['ip', 'netns', 'exec', this.host(host).ns, 'iptables', ...args])
    ipt('-N', chain)
    for (const r of rules) ipt('-A', chain, ...r)
    ipt('-I', 'OUTPUT', '-j', chain)
    ipt('-I', 'INPUT', '-j', chain)
  }

  #unchain (host: string, chain: string): void {
    const ipt = (...args: string[]): void => { spawnSync('ip', ['netns', 'exec', this.host(host).ns, 'iptables', ...args]) }
    ipt('-D', 'OUTPUT', '-j', chain)
    ipt('-D', 'INPUT', '-j', chain)
    ipt('-F', chain)
    ipt('-X', chain)
  }

  /** Cut `host` from these addresses, both ways: packets are dropped, nothing is refused. */
  partition (host: string, from: readonly string[]): void {
    this.#chain(host, 'CLB-PARTITION', from.flatMap((ip) => [['-d', ip, '-j', 'DROP'], ['-s', ip, '-j', 'DROP']]))
  }

  heal (host: string): void {
    this.#unchain(host, 'CLB-PARTITION')
  }

  /**
   * Latency and loss on a host's link, both directions: tc netem where the kernel has it; else (netem
   * is not built into every kernel) a tbf queue throttling the link, whose backlog is the latency,
   * and iptables dropping a share of the packets at random.
   */
  degrade (host: string, o: { delayMs: number, jitterMs: number, lossPercent: number, tbfRate: string }): void {
    const ns = this.host(host).ns
    const netem = spawnSync('ip', ['netns', 'exec', ns, 'tc', 'qdisc', 'add', 'dev', 'eth0', 'root', 'netem', 'delay', `${o.delayMs}ms`, `${o.jitterMs}ms`, 'loss', `${o.lossPercent}%`], { encoding: 'utf8' })
    if (netem.status === 0) {
      this.degradedWith = 'netem'
      // the other direction on the switch's side of the veth
      const port = this.#portOf(host)
      run(['ip', 'netns', 'exec', this.#switch, 'tc', 'qdisc', 'add', 'dev', port, 'root', 'netem', 'delay', `${o.delayMs}ms`, `${o.jitterMs}ms`, 'loss', `${o.lossPercent}%`])
      return
    }
    this.degradedWith = 'tbf+iptables'
    run(['ip', 'netns', 'exec', ns, 'tc', 'qdisc', 'add', 'dev', 'eth0', 'root', 'tbf', 'rate', o.tbfRate, 'burst', '16kb', 'latency', `${o.delayMs}ms`])
    run(['ip', 'netns', 'exec', this.#switch, 'tc', 'qdisc', 'add', 'dev', this.#portOf(host), 'root', 'tbf', 'rate', o.tbfRate, 'burst', '16kb', 'latency', `${o.delayMs}ms`])
    this.#chain(host, 'CLB-LOSS', [['-m', 'statistic', '--mode', 'random', '--probability', String(o.lossPercent / 100), '-j', 'DROP']])
  }

  restore (host: string): void {
    spawnSync('ip', ['netns', 'exec', this.host(host).ns, 'tc', 'qdisc', 'del', 'dev', 'eth0', 'root'])
    spawnSync('ip', ['netns', 'exec', this.#switch, 'tc', 'qdisc', 'del', 'dev', this.#portOf(host), 'root'])
    this.#unchain(host, 'CLB-LOSS')
  }

  #portOf (host: string): string {
    return `p${[...this.hosts.keys()].indexOf(host) + 1}`
  }

  /** Kill every process in every namespace made, then delete the namespaces. */
  destroy (): string[] {
    for (const p of this.#procs) p.kill('SIGKILL')
    const left: string[] = []
    for (const ns of [...[...this.hosts.values()].map((h) => h.ns), this.#switch]) {
      killAll(ns)
      if (spawnSync('ip', ['netns', 'del', ns]).status !== 0) left.push(ns)
    }
    this.hosts.clear()
    return left
  }

  /** Namespaces of this network that still exist. */
  leftovers (): string[] {
    const all = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout
    return all.split('\n').map((l) => l.split(' ')[0]!).filter((n) => n.startsWith(`${this.#prefix}-`))
  }
}
