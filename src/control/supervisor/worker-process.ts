/**
 * @module workers/worker-process
 * One worker: the forked process, its upstream Host, and its way up (IPC ready, then health probes)
 * and down (SIGTERM, then SIGKILL). Policy (when to start, replace or stop) is the supervisor's.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { rmSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { Client } from 'undici'
import { Host } from '../../data/upstream/host.js'
import type { Config } from '../../shared/config/schema.js'
import { WORKER_BOOT_ENV, WORKER_HEALTH_PATH, type WorkerBoot, type WorkerMessage, type WorkerProcessSample } from '../../shared/workers/protocol.js'
import { ClaylbError } from '../../shared/errors.js'
import { undici } from '../../shared/lazy-modules.js'

const RUNTIME = fileURLToPath(new URL('../../app-side/worker/runtime.js', import.meta.url))
/** pause between readiness probes */
const PROBE_GAP_MS = 50

export type WorkerState = 'starting' | 'ready' | 'draining' | 'stopping' | 'exited'

export class WorkerNotReady extends ClaylbError {
  constructor (message: string) { super('CLAYLB_ERR_WORKER_NOT_READY', message) }
}

export interface WorkerEvents {
  message (w: WorkerProcess, msg: WorkerMessage): void
  exit (w: WorkerProcess): void
}

export class WorkerProcess {
  readonly id: string
  readonly slot: number
  readonly generation: number
  readonly socketPath: string
  readonly url: string
  readonly host: Host
  readonly child: ChildProcess
  readonly startedAt = Date.now()
  state: WorkerState = 'starting'
  /** stopped on purpose: its exit is not a crash */
  retired = false
  /** requests the proxy had sent it when it was told to drain */
  dispatchedAtDrain: number | undefined
  /** the worker's own count, reported as it stopped */
  reportedRequests: number | undefined
  /** the last process sample the worker pushed over IPC (metrics read it; nobody waits for one) */
  lastSample: WorkerProcessSample | undefined
  exitCode: number | null = null
  exitSignal: NodeJS.Signals | null = null
  readonly exited: Promise<void>
  private readyMessage = false
  private readyWaiter: (() => void) | null = null
  private readonly tmpdir: string

  constructor (spec: WorkerBoot, private readonly events: WorkerEvents) {
    this.id = spec.id
    this.slot = spec.slot
    this.generation = spec.generation
    this.socketPath = spec.socketPath
    this.tmpdir = spec.tmpdir
    this.url = `unix:${spec.socketPath}`
    this.host = new Host({ id: spec.id, url: this.url, socketPath: spec.socketPath, kind: 'worker', slot: spec.slot })
    this.child = fork(RUNTIME, [], {
      cwd: spec.tmpdir,
      env: workerEnv(JSON.stringify(spec)),
      // the worker must not inherit a debugger, a loader or a test harness's hooks from claylb
      execArgv: [],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      serialization: 'json',
    })
    this.child.on('message', (msg: WorkerMessage) => {
      if (msg.type === 'ready') {
        this.readyMessage = true
        this.readyWaiter?.()
      } else if (msg.type === 'stopped') {
        this.reportedRequests = msg.requests
      } else if (msg.type === 'metrics') {
        this.lastSample = msg.sample
      }
      this.events.message(this, msg)
    })
    this.exited = new Promise((resolve) => {
      // 'error' without 'exit' means the fork itself failed
      this.child.once('error', () => { if (this.child.pid === undefined) this.onExit(null, null, resolve) })
      // 'close', not 'exit': it comes after the IPC channel closed, so the last message was read
      this.child.once('close', (code: number | null, signal: NodeJS.Signals | null) => this.onExit(code, signal, resolve))
    })
  }

  get pid (): number | undefined {
    return this.child.pid
  }

  private onExit (code: number | null, signal: NodeJS.Signals | null, resolve: () => void): void {
    if (this.state === 'exited') return
    this.state = 'exited'
    this.exitCode = code
    this.exitSignal = signal
    this.readyWaiter?.()
    rmSync(this.socketPath, { force: true })
    rmSync(this.tmpdir, { recursive: true, force: true })
    this.events.exit(this)
    this.host.close()
    resolve()
  }

  /**
   * Resolves once the worker said it is ready AND answered `healthyThreshold` probes in a row;
   * rejects with WorkerNotReady when it exits, misses the deadline or fails `unhealthyThreshold` probes.
   */
  async waitReady (timeoutMs: number, health: Config['healthCheck']): Promise<void> {
    const path = health.path ?? WORKER_HEALTH_PATH
    const deadline = Date.now() + timeoutMs
    if (!this.readyMessage && this.state !== 'exited') {
      let timer: NodeJS.Timeout | undefined
      await new Promise<void>((resolve) => {
        this.readyWaiter = resolve
        timer = setTimeout(resolve, timeoutMs)
      })
      clearTimeout(timer)
      this.readyWaiter = null
    }
    if (this.state === 'exited') throw new WorkerNotReady(`worker ${this.id} exited before it was ready (${this.exitDescription()})`)
    if (!this.readyMessage) throw new WorkerNotReady(`worker ${this.id} did not report ready within ${timeoutMs} ms (workers.readyTimeoutMs)`)
    // the probes' own client, one keep-alive connection, gone with the probes: requests reach the
    // worker through the engine's pool, checks once it is up through the health checker's client
    const { Client } = undici()
    const client = new Client(this.host.origin, {
      socketPath: this.socketPath,
      connectTimeout: health.timeoutMs,
      keepAliveTimeout: PROBE_GAP_MS * 20,
    })
    try {
      let passes = 0
      let failures = 0
      let last = ''
      while (passes < health.healthyThreshold) {
        const remaining = deadline - Date.now()
        if (remaining <= 0) throw new WorkerNotReady(`worker ${this.id} did not pass its health probes within ${timeoutMs} ms (workers.readyTimeoutMs): ${last}`)
        last = await probe(client, path, Math.min(health.timeoutMs, remaining))
        if (this.hasExited()) throw new WorkerNotReady(`worker ${this.id} exited during its health probes (${this.exitDescription()})`)
        if (last === '') {
          passes++
          failures = 0
        } else {
          passes = 0
          if (++failures >= health.unhealthyThreshold) {
            throw new WorkerNotReady(`worker ${this.id} failed ${failures} health probes of GET ${path}: ${last}`)
          }
        }
        if (passes < health.healthyThreshold) await sleep(PROBE_GAP_MS)
      }
    } finally {
      void client.destroy().catch(() => {})
    }
  }

  /** SIGTERM (the worker drains itself), then SIGKILL after graceMs. Resolves once it exited. */
  async stop (graceMs: number): Promise<void> {
    if (this.state === 'exited') return
    this.state = 'stopping'
    this.child.kill('SIGTERM')
    const t = setTimeout(() => this.child.kill('SIGKILL'), graceMs)
    await this.exited
    clearTimeout(t)
  }

  /** (a method, so TypeScript does not keep a narrowing of `state` across an await) */
  hasExited (): boolean {
    return this.state === 'exited'
  }

  exitDescription (): string {
    return this.exitSignal ? `killed by ${this.exitSignal}` : `exit code ${this.exitCode ?? '?'}`
  }

  toJSON (): Record<string, unknown> {
    return {
      id: this.id,
      slot: this.slot,
      pid: this.pid ?? null,
      generation: this.generation,
      state: this.state,
      url: this.url,
      requests: this.host.requests,
      inflight: this.host.inflight,
      startedAt: new Date(this.startedAt).toISOString(),
    }
  }
}

function workerEnv (boot: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, [WORKER_BOOT_ENV]: boot }
  // NODE_OPTIONS could carry a loader or --inspect meant for claylb itself
  delete env['NODE_OPTIONS']
  return env
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** '' when the probe passed, else why it failed */
async function probe (client: Client, path: string, timeoutMs: number): Promise<string> {
  try {
    const r = await client.request({ method: 'GET', path, headersTimeout: timeoutMs, bodyTimeout: timeoutMs })
    await r.body.dump()
    return r.statusCode >= 200 && r.statusCode < 300 ? '' : `status ${r.statusCode}`
  } catch (err) {
    return (err as { code?: string }).code ?? (err as Error).message
  }
}
