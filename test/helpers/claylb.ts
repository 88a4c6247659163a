/**
 * Starts the real, built CLI (bin/claylb → dist/) as a child process and waits for its "listening" line.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { stringify } from 'yaml'
import { waitFor } from './wait.js'

export const ROOT = resolve(import.meta.dirname, '..', '..')
export const BIN = join(ROOT, 'bin', 'claylb')

export interface Claylb {
  proc: ChildProcess
  pid: number
  /** http://127.0.0.1:PORT of the proxy */
  url: string
  admin: string
  /** every JSON log line so far */
  logs: Array<Record<string, unknown>>
  stderr: string
  /** send a signal and wait for the exit code */
  stop (signal?: NodeJS.Signals): Promise<number | null>
  exited: Promise<number | null>
  waitForLog (pred: (l: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>
}

export interface StartOptions {
  /** written to a temporary YAML file and passed with --config */
  config?: Record<string, unknown>
  args?: string[]
  env?: NodeJS.ProcessEnv
  timeoutMs?: number
  /** its own process group (to signal claylb and its workers together, as a terminal does) */
  detached?: boolean
  /** run it in this network namespace (ip netns exec), listening on `host` */
  netns?: string
  /** the proxy's address (default 127.0.0.1) */
  host?: string
  /**
   * also wait for GET /readyz to answer 200 (an upstream in rotation): "listening" comes before the
   * workers have passed their first health checks, which takes seconds on a busy machine
   */
  waitReady?: boolean
}

export function writeConfig (config: Record<string, unknown>): string {
  const dir = mkdtempSync(join(tmpdir(), 'claylb-test-'))
  const file = join(dir, 'config.yaml')
  writeFileSync(file, stringify(config))
  return file
}

/** The environment for a child process: tap's loader hooks (NODE_OPTIONS) must not leak into it. */
export function childEnv (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (k === 'NODE_OPTIONS' || k.startsWith('TAP') || k.startsWith('_TAPJS')) continue
    env[k] = v
  }
  // one proxy process unless the run asks for more (.ci/run runs some suites with CLAYLB_PROCESSES=2);
  // `listen.processes` or --processes in a test still wins. No accept grace on SIGTERM (no balancer in
  // front waits for /readyz; 10 s a stop would slow every file): shutdown.acceptGraceMs in a test wins
  return { ...env, CLAYLB_PROCESSES: process.env['CLAYLB_PROCESSES'] ?? '1', CLAYLB_ACCEPT_GRACE_MS: process.env['CLAYLB_ACCEPT_GRACE_MS'] ?? '0', ...extra }
}

const running = new Set<ChildProcess>()
let orphanGuardChecked = false
process.on('exit', () => { for (const p of running) p.kill('SIGKILL') })

export async function startClaylb (o: StartOptions = {}): Promise<Claylb> {
  const args = ['start', '--port', '0', '--admin-port', '0', '--host', o.host ?? '127.0.0.1']
  if (o.config) args.push('--config', writeConfig(o.config))
  args.push(...(o.args ?? []))
  // The machine's own Redis on 6379 is never used: claylb has no implicit Redis, and unless a test names
  // one (REDIS_URL), a config that needs Redis gets a private redis-server of claylb's own.
  // setpriv --pdeathsig (util-linux): claylb is killed when this test process dies, however it dies
  // (tap ends a file that ran past its time with SIGKILL, which runs no exit handler); an orphaned
  // claylb, recycling its workers forever, would load the machine under every test after it
  const orphanGuard = ['setpriv', '--pdeathsig', 'KILL']
  if (!orphanGuardChecked) {
    if (spawnSync('setpriv', ['--version']).error !== undefined) throw new Error('setpriv is not on the PATH: install util-linux (Debian/Ubuntu: apt-get install -y util-linux)')
    orphanGuardChecked = true
  }
  const [cmd, ...pre] = o.netns === undefined ? [...orphanGuard, process.execPath] : ['ip', 'netns', 'exec', o.netns, ...orphanGuard, process.execPath]
  const proc = spawn(cmd!, [...pre, BIN, ...args], {
    cwd: ROOT,
    env: childEnv(o.env),
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: o.detached ?? false,
  })
  running.add(proc)
  const logs: Array<Record<string, unknown>> = []
  const watchers = new Set<() => void>()
  let buf = ''
  let stderr = ''
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
    buf += d
    let i
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i)
      buf = buf.slice(i + 1)
      try { logs.push(JSON.parse(line)) } catch { logs.push({ raw: line }); if (process.env['CLAYLB_DEBUG_LOGS']) process.stderr.write(`UNPARSED: ${line.slice(0, 300)}\n`) }
    }
    for (const w of watchers) w()
  })
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => { stderr += d })
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => { running.delete(proc); for (const w of watchers) w(); resolve(code) }))

  const waitForLog = (pred: (l: Record<string, unknown>) => boolean, timeoutMs = 15_000): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      const check = (): boolean => {
        const hit = logs.find(pred)
        if (hit) { watchers.delete(check); clearTimeout(t); resolve(hit); return true }
        if (proc.exitCode !== null || proc.signalCode !== null) {
          watchers.delete(check); clearTimeout(t)
          reject(new Error(`claylb exited (${proc.exitCode ?? proc.signalCode}) before the expected log line\nstderr: ${stderr}\nlogs: ${JSON.stringify(logs.slice(-5))}`))
          return true
        }
        return false
      }
      const t = setTimeout(() => { watchers.delete(check); reject(new Error(`timed out waiting for a log line\nstderr: ${stderr}\nlogs: ${JSON.stringify(logs.slice(-5))}`)) }, timeoutMs)
      if (!check()) watchers.add(check)
    })

  // a start that never comes is a failure of this test, not a hang of the whole file: the process
  // (whose open pipes would keep this one alive) is killed
  const listening = await waitForLog((l) => l['msg'] === 'listening', o.timeoutMs ?? 60_000).catch((err: unknown) => {
    proc.kill('SIGKILL')
    throw err
  })
  if (o.waitReady === true) {
    let last = ''
    await waitFor(async () => {
      const r = await fetch(`${String(listening['admin'])}/readyz`).then(async (res) => ({ status: res.status, body: await res.text() }), (err: Error) => ({ status: 0, body: err.message }))
      last = `${r.status}: ${r.body}`
      return r.status === 200
    }, 'GET /readyz to answer 200 after "listening"', { timeoutMs: o.timeoutMs ?? 60_000, seen: () => last }).catch((err: unknown) => {
      proc.kill('SIGKILL')
      throw err
    })
  }
  const c: Claylb = {
    proc,
    pid: proc.pid!,
    url: String(listening['proxy']),
    admin: String(listening['admin']),
    logs,
    get stderr () { return stderr },
    exited,
    waitForLog,
    async stop (signal: NodeJS.Signals = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal)
      return exited
    },
  }
  return c
}
