/**
 * @module app
 * The composition root: builds the modules from a Config and wires them. No logic of its own.
 */
import type { AddressInfo, Server } from 'node:net'
import type { Config } from './config/schema.js'
import { createAccessLog, type Logger } from './log.js'
import { Cluster } from './upstream/cluster.js'
import { Host } from './upstream/host.js'
import { createBalancer, type Balancer } from './balancer/balancer.js'
import { ProxyCore } from './proxy/proxy.js'
import { Engine } from './engine/engine.js'
import { AdminServer, sendJson } from './admin/admin.js'
import { Supervisor, type RolloutResult } from './workers/supervisor.js'
import { ActiveHealthChecks } from './health/active-check.js'
import { OutlierDetector } from './health/outlier.js'
import { Metrics } from './metrics/metrics.js'
import { registerUpstreamRoutes } from './admin/upstreams.js'
import { closeRedis, createRedis, describeRedis, waitReady } from './redis/index.js'
import { createIdempotencyGate } from './idempotency/setup.js'
import { metricsObserver } from './idempotency/metrics-observer.js'
import { loadCertificates, loadUpstreamTls } from './tls/certificates.js'
import { ConfigError } from './config/load.js'

export interface App {
  readonly config: Config
  readonly cluster: Cluster
  readonly balancer: Balancer
  readonly core: ProxyCore
  readonly admin: AdminServer
  readonly proxyServer: Server
  readonly supervisor: Supervisor
  readonly metrics: Metrics
  readonly healthChecks: ActiveHealthChecks
  readonly outlier: OutlierDetector
  /** the worker generation serving */
  readonly generation: number
  start (): Promise<{ proxy: string, admin: string }>
  /** stop accepting, drain in-flight requests (bounded by shutdownTimeoutMs), close everything */
  stop (): Promise<void>
  /** re-read the config and roll the workers to a new generation (SIGHUP, POST /reload) */
  reload (): Promise<RolloutResult>
}

export interface AppOptions {
  /** re-reads the config file with the command line's overrides; without it a reload reuses `config` */
  reloadConfig?: () => Config
}

export function hostFromUpstream (config: Config, u: { url: string, weight: number, id?: string | undefined }): Host {
  return new Host({
    id: u.id ?? new URL(u.url).host,
    url: u.url,
    weight: u.weight,
    connectTimeoutMs: config.timeouts.connectMs,
    headersTimeoutMs: config.timeouts.headersMs,
    bodyTimeoutMs: config.timeouts.idleMs,
  })
}

export function createApp (config: Config, logger: Logger, options: AppOptions = {}): App {
  const cluster = new Cluster(config.panic)
  cluster.onPanic((panic) => {
    if (panic === 'off') logger.info({ up: cluster.upCount(), hosts: cluster.hosts.length }, 'panic mode over')
    else logger.warn({ mode: panic, up: cluster.upCount(), hosts: cluster.hosts.length, thresholdPercent: config.panic.thresholdPercent }, 'panic mode: too few healthy upstreams')
  })
  // the listener's certificates are re-read with the config: a bad one refuses the whole reload
  // (the supervisor logs it and answers 409), the certificates and workers serving stay as they are
  const reread = options.reloadConfig
  const reloadConfig = reread === undefined ? undefined : (): Config => {
    const next = reread()
    const problems = engine.reloadCertificates(next)
    if (problems.length > 0) throw new ConfigError(problems)
    return next
  }
  const supervisor = new Supervisor({ config, cluster, logger, ...(reloadConfig ? { reloadConfig } : {}) })
  for (const u of config.upstreams) cluster.add(hostFromUpstream(config, u))
  const balancer = createBalancer(config.balancer.policy, cluster)
  const core = new ProxyCore({
    balancer,
    retry: config.retry,
    requestTimeoutMs: config.timeouts.requestMs,
    maxBodyBytes: config.limits.maxBodyBytes,
    accessLog: config.log.access ? createAccessLog(config.log.level) : null,
  })
  const upstreamTls = loadUpstreamTls(config.tls)
  const engine = new Engine(core, {
    maxHeaderBytes: config.limits.maxHeaderBytes,
    headersTimeoutMs: Math.min(config.timeouts.headersMs, config.timeouts.requestMs),
    idleTimeoutMs: Math.min(config.timeouts.idleMs, 65_000),
    connectTimeoutMs: config.timeouts.connectMs,
    perTryTimeoutMs: config.retry.perTryTimeoutMs,
    bodyIdleMs: config.timeouts.idleMs,
    tls: config.listen.tls === undefined ? undefined : { certificates: loadCertificates(config.listen.tls), http2: config.listen.http2 },
    upstreamTls,
    logger,
  })
  const proxyServer = engine.server
  const admin = new AdminServer(config.admin.token)
  const t = config.tls
  const healthChecks = new ActiveHealthChecks(cluster, config.healthCheck, logger, t.ca === undefined && t.servername === undefined && t.rejectUnauthorized ? undefined : {
    ...(upstreamTls.ca !== undefined ? { ca: upstreamTls.ca } : {}),
    ...(upstreamTls.servername !== undefined ? { servername: upstreamTls.servername } : {}),
    rejectUnauthorized: upstreamTls.rejectUnauthorized,
  })
  const outlier = new OutlierDetector(cluster, config.outlier, logger)
  // a spawned worker is never waited for: one that fails its checks or gets ejected is replaced
  const recycleWorker = (reason: string) => (host: Host): void => {
    if (host.kind !== 'worker') return
    const w = supervisor.find(host.id)
    if (w !== undefined && supervisor.requestRecycle(w, reason)) logger.warn({ worker: w.id, slot: w.slot, reason }, 'recycling an unhealthy worker')
  }
  outlier.onEjected = recycleWorker('ejected')
  healthChecks.onUnhealthy = recycleWorker('health checks failed')
  const metrics = new Metrics({
    cluster,
    retryPolicy: core.retryPolicy,
    inflight: () => core.inflight,
    generation: () => app.generation,
  })
  metrics.workerSource = supervisor
  // both hooks run on every try / request: plain field updates, no allocation
  core.observer = {
    tryEnded (host, outcome) {
      outlier.tryEnded(host, outcome)
      metrics.tryEnded(host, outcome)
    },
    requestEnded (ex, ms) {
      metrics.requestEnded(ex.host, ex.status, ms)
    },
  }
  // the state tier is connected only when a feature needs it
  const redis = config.idempotency.routes.length > 0 ? createRedis(config.redis, 'idempotency') : undefined
  if (redis !== undefined) core.idempotency = createIdempotencyGate(config, redis, logger, metricsObserver(metrics))

  // readiness is the proxy's, not the process's: ready only while the listener is bound and until a
  // drain starts, so a load balancer or a Kubernetes probe never sends to a port that refuses or closes
  let serving = false
  const app: App = {
    config, cluster, balancer, core, admin, proxyServer, supervisor, metrics, healthChecks, outlier,
    get generation () { return supervisor.generation },
    async start () {
      healthChecks.start()
      if (redis !== undefined) await waitReady(redis, 5000, `Redis at ${describeRedis(config.redis)}`)
      await listen(admin.server, config.admin.port, config.admin.host)
      // the first workers are up (or failed and backing off) before the proxy port opens, so the
      // first clients are served rather than answered 503
      await supervisor.start()
      await listen(proxyServer, config.listen.port, config.listen.host)
      serving = true
      return { proxy: urlOf(proxyServer, engine.tls ? 'https' : 'http'), admin: urlOf(admin.server) }
    },
    reload: () => supervisor.reload(),
    async stop () {
      serving = false
      engine.close()
      const drained = await Promise.race([
        core.idle().then(() => true),
        new Promise<boolean>((resolve) => setTimeout(resolve, config.shutdownTimeoutMs, false).unref()),
      ])
      if (!drained) logger.warn({ inflight: core.inflight }, 'shutdown timeout: closing with requests in flight')
      engine.closeAll()
      core.close()
      healthChecks.close()
      outlier.close()
      await supervisor.stop()
      admin.server.close()
      admin.server.closeAllConnections()
      await cluster.close()
      if (core.idempotency !== null) await core.idempotency.core.store.close()
      if (redis !== undefined) await closeRedis(redis)
    },
  }

  admin.route('GET', '/healthz', (_req, res) => sendJson(res, 200, { status: 'ok' }))
  admin.route('GET', '/readyz', (_req, res) => {
    const n = cluster.upCount()
    const ready = serving && n > 0
    sendJson(res, ready ? 200 : 503, { ready, listening: serving, healthyUpstreams: n, panic: cluster.panic })
  })
  admin.route('GET', '/status', (_req, res) => sendJson(res, 200, {
    generation: app.generation,
    panic: cluster.panic,
    upstreams: cluster.hosts.map((h) => h.toJSON()),
    workers: supervisor.status(),
  }))
  admin.route('POST', '/reload', async (_req, res) => {
    const r = await app.reload()
    if (r.ok) sendJson(res, 200, { generation: r.generation })
    else sendJson(res, 409, { error: 'rollout abandoned', detail: r.reason, generation: r.generation })
  })
  admin.route('POST', '/workers/:id/recycle', (_req, res, params) => {
    const w = supervisor.find(params['id']!)
    if (w === undefined) sendJson(res, 404, { error: 'no such worker', id: params['id'] })
    else if (!supervisor.requestRecycle(w, 'admin')) sendJson(res, 409, { error: `worker ${w.id} is ${w.state}, not serving, or already queued for recycling` })
    else sendJson(res, 202, { recycling: w.id, slot: w.slot })
  })
  admin.route('GET', '/metrics', async (_req, res) => {
    const text = await metrics.text()
    res.writeHead(200, { 'content-type': metrics.contentType, 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' })
    res.end(text)
  })
  registerUpstreamRoutes(admin, cluster, config.shutdownTimeoutMs, logger)
  return app
}

function listen (server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => { server.off('error', reject); resolve() })
  })
}

function urlOf (server: Server, scheme = 'http'): string {
  const a = server.address() as AddressInfo
  const host = a.family === 'IPv6' ? `[${a.address}]` : a.address
  return `${scheme}://${host}:${a.port}`
}
