/**
 * A real redis-server for tests: started by the harness on a free port (or REDIS_URL when set), and a
 * real 3-master Redis Cluster. A missing redis-server is a failure that says how to install it.
 */
import { spawn, spawnSync, execFileSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const INSTALL_HINT = 'redis-server is not on the PATH: install it (Debian/Ubuntu: apt-get install -y redis-server; macOS: brew install redis) or set REDIS_URL to a Redis you own'

export function requireRedisServer (): string {
  const r = spawnSync('redis-server', ['--version'], { encoding: 'utf8' })
  if (r.error || r.status !== 0) throw new Error(INSTALL_HINT)
  return r.stdout
}

export async function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port
      s.close(() => resolve(port))
    })
  })
}

async function waitPort (port: number, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1')
      s.once('connect', () => { s.destroy(); resolve(true) })
      s.once('error', () => resolve(false))
    })
    if (ok) return
    if (Date.now() > until) throw new Error(`redis on port ${port} did not come up`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

export interface RedisServer {
  url: string
  port: number
  /** false when REDIS_URL was used (then stop/start are not ours to call) */
  owned: boolean
  /** end the server (an outage): SIGKILL unless told otherwise (SIGTERM is Redis' clean shutdown) */
  stop (signal?: NodeJS.Signals): Promise<void>
  /** start it again on the same port */
  start (): Promise<void>
  /** freeze it (SIGSTOP: connections stay open, nothing answers) / thaw it (SIGCONT) */
  pause (): void
  resume (): void
  close (): Promise<void>
}

const children = new Set<ChildProcess>()
process.on('exit', () => { for (const c of children) c.kill('SIGKILL') })

function spawnRedis (port: number, extra: string[] = [], dir?: string): ChildProcess {
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', ...extra]
  if (dir) args.push('--dir', dir)
  const p = spawn('redis-server', args, { stdio: 'ignore' })
  children.add(p)
  p.on('exit', () => children.delete(p))
  return p
}

export interface StartRedisOptions {
  /** false: always start a private server, even when REDIS_URL is set */
  useEnv?: boolean
  /** an append-only file fsynced on every write, so a restart keeps every acknowledged write */
  persist?: boolean
  /** start a replica of the server on this port (loopback) */
  replicaOf?: number
  /** more redis-server arguments (e.g. --requirepass) */
  args?: string[]
}

export async function startRedis (opts: StartRedisOptions = {}): Promise<RedisServer> {
  const env = process.env['REDIS_URL']
  if (env && opts.useEnv !== false) {
    const notOwned = (): never => { throw new Error('REDIS_URL is not owned by the test') }
    return { url: env, port: Number(new URL(env).port || 6379), owned: false, async stop () { notOwned() }, async start () {}, pause: notOwned, resume: notOwned, async close () {} }
  }
  requireRedisServer()
  const port = await freePort()
  // a replica writes the snapshot it loads: never into the working directory
  const dir = opts.persist === true || opts.replicaOf !== undefined ? mkdtempSync(join(tmpdir(), `claylb-redis-${port}-`)) : undefined
  const extra = opts.persist === true ? ['--appendonly', 'yes', '--appendfsync', 'always'] : []
  if (opts.replicaOf !== undefined) extra.push('--replicaof', '127.0.0.1', String(opts.replicaOf))
  extra.push(...opts.args ?? [])
  let proc: ChildProcess | undefined = spawnRedis(port, extra, dir)
  await waitPort(port)
  const server: RedisServer = {
    url: `redis://127.0.0.1:${port}`,
    port,
    owned: true,
    async stop (signal: NodeJS.Signals = 'SIGKILL') {
      const p = proc
      proc = undefined
      if (!p || p.exitCode !== null) return
      await new Promise<void>((resolve) => { p.once('exit', () => resolve()); p.kill(signal) })
    },
    async start () {
      if (proc) return
      proc = spawnRedis(port, extra, dir)
      await waitPort(port)
    },
    pause () { proc?.kill('SIGSTOP') },
    resume () { proc?.kill('SIGCONT') },
    async close () {
      proc?.kill('SIGCONT')
      await server.stop()
    },
  }
  return server
}

export interface RedisCluster {
  /** seed node URLs */
  urls: string[]
  close (): Promise<void>
}

/** A real 3-master cluster (no replicas) on free ports, built with redis-cli --cluster create. */
export async function startRedisCluster (o: { password?: string } = {}): Promise<RedisCluster> {
  requireRedisServer()
  const ports = [await freePort(), await freePort(), await freePort()]
  const auth = o.password === undefined ? [] : ['--requirepass', o.password, '--masterauth', o.password]
  const cliAuth = o.password === undefined ? [] : ['--no-auth-warning', '-a', o.password]
  const procs = ports.map((port) => {
    const dir = mkdtempSync(join(tmpdir(), `claylb-cluster-${port}-`))
    return spawnRedis(port, ['--cluster-enabled', 'yes', '--cluster-config-file', join(dir, 'nodes.conf'), '--cluster-node-timeout', '2000', ...auth], dir)
  })
  await Promise.all(ports.map((p) => waitPort(p)))
  execFileSync('redis-cli', [...cliAuth, '--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'], { stdio: 'ignore' })
  // wait until every node agrees the cluster is ok
  const until = Date.now() + 15_000
  for (const port of ports) {
    for (;;) {
      const info = execFileSync('redis-cli', [...cliAuth, '-p', String(port), 'cluster', 'info'], { encoding: 'utf8' })
      if (info.includes('cluster_state:ok')) break
      if (Date.now() > until) throw new Error('redis cluster did not reach cluster_state:ok')
      await new Promise((r) => setTimeout(r, 100))
    }
  }
  return {
    urls: ports.map((p) => `redis://127.0.0.1:${p}`),
    async close () {
      await Promise.all(procs.map((p) => new Promise<void>((resolve) => {
        if (p.exitCode !== null) return resolve()
        p.once('exit', () => resolve())
        p.kill('SIGKILL')
      })))
    },
  }
}
