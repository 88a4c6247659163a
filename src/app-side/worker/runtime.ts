/**
 * @module workers/runtime
 * The entry of every worker process. Reads its boot description, moves into its own empty directory,
 * loads the app module, listens on its Unix socket, tells the supervisor it is ready, and on SIGTERM
 * finishes what is in flight and exits. Nothing it keeps survives it: the directory is deleted on exit.
 * Imports only node built-ins, so a worker is serving ~150 ms after fork (the state tier, ioredis, is
 * loaded when the app first asks for it).
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import { rmSync } from 'node:fs'
import { pathToFileURL } from 'node:url'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { WORKER_BOOT_ENV, WORKER_METRICS_INTERVAL_MS, type WorkerBoot, type WorkerMessage } from '../../shared/workers/protocol.js'
import type { RequestHandler, WorkerContext } from './context.js'
import { createWorkerLogger } from './worker-logger.js'
import { ProxyError, sendProblem } from '../../shared/errors.js'
import { createWorkerState } from '../session/worker-state.js'
import { ClaylbError } from '../../shared/errors.js'

class AppModuleError extends ClaylbError {
  constructor (message: string) { super('CLAYLB_ERR_APP_MODULE', message) }
}

const bootText = process.env[WORKER_BOOT_ENV]
if (bootText === undefined || typeof process.send !== 'function') {
  process.stderr.write('claylb worker runtime: start workers with `claylb start`, not directly\n')
  process.exit(2)
}
delete process.env[WORKER_BOOT_ENV]
const boot = JSON.parse(bootText) as WorkerBoot

// The supervisor drives shutdown and reloads: a terminal's ^C or hang-up, or a SIGHUP sent to the
// process group, reaches the workers too, and must not kill them under claylb's feet.
process.on('SIGINT', ignore)
process.on('SIGHUP', ignore)
function ignore (): void {}

process.chdir(boot.tmpdir)
process.on('exit', () => rmSync(boot.tmpdir, { recursive: true, force: true }))

const logger = createWorkerLogger({ worker: boot.id, slot: boot.slot, generation: boot.generation }, boot.config.log.level)
const state = createWorkerState(boot.config, logger)
const ctx: WorkerContext = Object.freeze({
  id: boot.id,
  slot: boot.slot,
  generation: boot.generation,
  config: boot.config,
  tmpdir: boot.tmpdir,
  logger,
  redis: state.redis,
  session: state.session,
})

function send (msg: WorkerMessage, then?: () => void): void {
  if (process.connected) process.send!(msg, undefined, {}, then ? () => then() : undefined)
  else then?.()
}

async function loadHandler (): Promise<RequestHandler> {
  const mod = await import(pathToFileURL(boot.appPath).href) as Record<string, unknown>
  const def = mod['default'] as unknown
  const factory = mod['createApp'] ?? (def !== null && typeof def === 'object' ? (def as Record<string, unknown>)['createApp'] : undefined)
  let made: unknown
  if (typeof factory === 'function') made = await factory(ctx)
  else if (typeof def === 'function') made = def.length >= 2 ? def : await def(ctx) // (req, res[, next]) is a handler
  else made = mod['handler']
  if (typeof made !== 'function') {
    throw new AppModuleError(`${boot.appPath} must export a request handler (req, res) or a factory (ctx) returning one, as default or as createApp`)
  }
  return made as RequestHandler
}

let handler: RequestHandler
try {
  handler = await loadHandler()
} catch (err) {
  logger.error({ err }, 'app module failed to start')
  process.exit(1)
}

/** requests served, health probes not included: the count the proxy's own must match */
let requests = 0
let probes = 0
let draining = false
const quota = boot.recycleAfterRequests
const id = boot.id
const probePath = boot.config.healthCheck.path

function onRequest (req: IncomingMessage, res: ServerResponse): void {
  if (req.url === probePath) probes++
  else if (++requests === quota) send({ type: 'recycle', requests })
  res.setHeader('x-worker-id', id)
  if (draining) res.shouldKeepAlive = false
  let out: unknown
  try {
    out = handler(req, res)
  } catch (err) {
    handlerFailed(res, err)
    return
  }
  if (out instanceof Promise) out.then(undefined, (err: unknown) => handlerFailed(res, err))
}

function handlerFailed (res: ServerResponse, err: unknown): void {
  // the app's own answer when it gives one: a state-tier outage is a 503 problem, not a crash
  if (err instanceof ProxyError) {
    logger.debug({ code: err.code, detail: err.message }, 'request answered with a problem')
    sendProblem(res, err)
    return
  }
  logger.error({ err }, 'request handler failed')
  if (res.headersSent) {
    res.destroy()
    return
  }
  res.writeHead(500, { 'content-type': 'application/json' })
  res.end('{"error":"internal error in the app"}')
}

const server = http.createServer(onRequest)
server.listen(boot.socketPath, () => {
  send({ type: 'ready' })
  reportMetrics()
})

/** pushes this process's sample to the supervisor, so claylb's /metrics never asks a worker */
function reportMetrics (): void {
  const lag = monitorEventLoopDelay({ resolution: 20 })
  lag.enable()
  setInterval(() => {
    const cpu = process.cpuUsage()
    const mem = process.memoryUsage()
    send({
      type: 'metrics',
      sample: {
        cpuSecondsTotal: (cpu.user + cpu.system) / 1e6,
        residentMemoryBytes: mem.rss,
        heapUsedBytes: mem.heapUsed,
        eventLoopLagSeconds: Number.isFinite(lag.mean) ? lag.mean / 1e9 : 0,
      },
    })
    lag.reset()
  }, WORKER_METRICS_INTERVAL_MS).unref()
}
server.on('error', (err) => {
  logger.error({ err }, 'cannot listen')
  process.exit(1)
})

/** Stop accepting, let in-flight requests finish, close keep-alive sockets as they go idle, then exit. */
function drain (): void {
  if (draining) return
  draining = true
  const closer = setInterval(() => server.closeIdleConnections(), 50)
  server.close(() => {
    clearInterval(closer)
    void state.close().finally(() => send({ type: 'stopped', requests, probes }, () => process.exit(0)))
  })
  server.closeIdleConnections()
}

process.on('SIGTERM', drain)
// the supervisor is gone (even killed with SIGKILL): nobody routes here any more
process.on('disconnect', drain)
