/**
 * @module app
 * The composition root: builds the modules from a Config and wires them. No logic of its own.
 */
import type { AddressInfo, ListenOptions, Server } from 'node:net'
import type { Config } from './config/schema.js'
import type { Logger } from './log.js'
import { createAccessLog, DEFAULT_FIELDS, type AccessLog } from './data/observe/access-log.js'
import { createLineSink } from './data/observe/log-sink.js'
import { Tracer } from './data/observe/trace.js'
import { OtlpExporter } from './data/observe/otlp.js'
import type { HeadObserve } from './engine/head.js'
import type { Cluster } from './upstream/cluster.js'
import { Host } from './upstream/host.js'
import { DEFAULT_POOL, WORKERS_POOL, hasUpstreams } from './config/routing.js'
import { newRetryTally } from './proxy/retry-policy.js'
import { PoolHosts, PoolRegistry } from './routing/pools.js'
import { buildRoutingState } from './routing/routing-state.js'
import { notLiveChanges } from './routing/reload-plan.js'
import { problemBody } from './errors.js'
import { ProxyCore } from './proxy/proxy.js'
import { Engine, type EngineOptions } from './engine/engine.js'
import { AdminServer, sendJson } from './admin/admin.js'
import { Supervisor, type RolloutResult } from './workers/supervisor.js'
import { Metrics } from './metrics/metrics.js'
import { registerUpstreamRoutes } from './admin/upstreams.js'
import { closeRedis, createRedis, describeRedis, logStateTransitions, type RedisClient } from './redis/index.js'
import { redisNeed } from './redis/embedded.js'
import { createIdempotencyGate, idempotencyRoutes } from './idempotency/setup.js'
import { metricsObserver } from './idempotency/metrics-observer.js'
import { loadCertificates, UpstreamTlsCache, type CertificateSet } from './tls/certificates.js'
import { ConfigError } from './config/error.js'
import type { ListenSpec, ProcessRow } from './cores/protocol.js'
import type { TryOutcome } from './proxy/retry-policy.js'

export interface App {
  /** the config applied last (a reload replaces it) */
  readonly config: Config
  /** the default pool's hosts (the top-level upstreams, else the workers) */
  readonly cluster: Cluster
  /** every pool's hosts, by pool name */
  readonly pools: PoolRegistry
  readonly core: ProxyCore
  readonly admin: AdminServer
  readonly proxyServer: Server
  readonly supervisor: Supervisor
  readonly metrics: Metrics
  /** the worker generation serving */
  readonly generation: number
  /** the forwarding engine (its listener is `proxyServer`) */
  readonly engine: Engine
  /** the proxy processes, when the primary runs the data plane in other processes (cores/primary.ts) */
  dataPlane: DataPlane | null
  /** apply a config that the primary already validated and rolled (a proxy process, on reload) */
  applyConfig (next: Config): void
  start (): Promise<{ proxy: string, admin: string }>
  /**
   * /readyz 503 at once, keep accepting for `acceptGraceMs` (shutdown.acceptGraceMs; 0 when nothing
   * listened yet), then stop accepting, drain in-flight requests (bounded by shutdown.timeoutMs),
   * close everything
   */
  stop (o?: { acceptGraceMs?: number }): Promise<void>
  /**
   * re-read the config, roll the workers to a new generation and apply every other change live
   * (SIGHUP, POST /reload); refused whole when a change cannot apply live (`refused` names the keys)
   */
  reload (): Promise<ReloadResult>
  /** SIGUSR1 (logrotate's postrotate): the access log file is opened again, here or in every proxy process */
  reopenLogs (): void
}

export type ReloadResult = RolloutResult
  /**
   * a change needs a restart (each key in `refused`), or (`refused` empty) the file does not validate
   * or a certificate is bad: `problems` lists each, as `claylb check-config` would
   */
  | { ok: false, generation: number, reason: string, refused: string[], problems: string[] }

export interface AppOptions {
  /** re-reads the config file with the command line's overrides; without it a reload reuses `config` */
  reloadConfig?: () => Config
  /**
   * single: one process, both planes. primary: the control plane only (its `dataPlane` forks the
   * proxy processes). proxy: a proxy process, the data plane only (cores/proxy-process.ts).
   */
  role?: 'single' | 'primary' | 'proxy'
  /** role proxy: how this process binds the shared port */
  listen?: ListenSpec
  /** where every try's outcome goes for passive health; default the host's pool's outlier detector */
  passiveHealth?: { tryEnded (host: Host, outcome: TryOutcome): void }
}

/** The proxy processes, seen from the primary's composition root. */
export interface DataPlane {
  /** fork the proxy processes, to load while the workers start; none listens before `listen` */
  prepare (): void
  /** start every proxy process; resolves with the proxy's URL once each one listens */
  listen (): Promise<string>
  /** SIGTERM: every process accepts for `acceptGraceMs` more, then stops, finishes its in-flight requests and exits */
  drain (acceptGraceMs: number): Promise<void>
  /** fetch every process's counters (before a scrape or /status); `processMetrics`: their default metrics too */
  refresh (o?: { processMetrics: boolean, waitMs?: number }): Promise<boolean>
  status (): ProcessRow[]
  /** a reload applied `config` here: every process applies it too */
  configChanged (config: Config): void
  /** SIGUSR1: every process opens its access log file again */
  reopenLogs (): void
}

export function hostFromUpstream (u: { url: string, weight: number, id?: string | undefined }): Host {
  return new Host({ id: u.id ?? new URL(u.url).host, url: u.url, weight: u.weight })
}

/** request ids and the tracer as the engine reads them; null when both are off (costs nothing then) */
function observeOf (c: Config, tracer: Tracer | null): HeadObserve | null {
  const idHeader = c.requestId.enabled ? c.requestId.header : ''
  return idHeader === '' && tracer === null ? null : { idHeader, tracer }
}

/** the access log `log` asks for: null when off, or when the level is above info */
function accessLogOf (log: Config['log']): AccessLog | null {
  const o = log.access
  if (!o.enabled || log.level === 'warn' || log.level === 'error' || log.level === 'fatal' || log.level === 'silent') return null
  return createAccessLog({ format: o.format, fields: o.fields ?? DEFAULT_FIELDS, name: 'claylb' }, createLineSink(o.path ?? 1))
}

function engineOptions (c: Config, tracer: Tracer | null): EngineOptions {
  return {
    observe: observeOf(c, tracer),
    maxHeaderBytes: c.limits.maxHeaderBytes,
    maxHeaders: c.limits.maxHeaders,
    underscoresInHeaders: c.limits.underscoresInHeaders,
    headersTimeoutMs: Math.min(c.timeouts.headersMs, c.timeouts.requestMs),
    idleTimeoutMs: Math.min(c.timeouts.idleMs, 65_000),
    connectTimeoutMs: c.timeouts.connectMs,
    bodyIdleMs: c.timeouts.idleMs,
    upstreamKeepAliveMs: c.timeouts.upstreamKeepAliveMs,
    clientBodyMs: c.timeouts.clientBodyMs,
  }
}

export function createApp (config: Config, logger: Logger, options: AppOptions = {}): App {
  const role = options.role ?? 'single'
  const startedAt = new Date().toISOString()
  let current = config
  let started = false
  const tally = newRetryTally()
  const pools = new PoolRegistry()
  // a spawned worker is never waited for: one that fails its checks or gets ejected is replaced
  const recycleWorker = (reason: string) => (host: Host): void => {
    if (host.kind !== 'worker') return
    const w = supervisor.find(host.id)
    if (w !== undefined && supervisor.requestRecycle(w, reason)) logger.warn({ worker: w.id, slot: w.slot, reason }, 'recycling an unhealthy worker')
  }
  // https:// upstreams: each pool's TLS setup (its `tls` merged over the top level's) for the proxy's
  // connections and the health checks; pools with the same settings share one
  const tlsCache = new UpstreamTlsCache()
  const upstreamTls = tlsCache.get(config.tls, 'tls')
  const newPool = (name: string, panic: Config['panic'], s: Pick<Config, 'healthCheck' | 'outlier' | 'tls'>): PoolHosts => {
    const t = s.tls
    const ut = tlsCache.get(t, name === DEFAULT_POOL || name === WORKERS_POOL ? 'tls' : `pools.${name}.tls`)
    const tlsConnect = t.ca === undefined && t.servername === undefined && t.rejectUnauthorized ? undefined : {
      ...(ut.ca !== undefined ? { ca: ut.ca } : {}),
      ...(ut.servername !== undefined ? { servername: ut.servername } : {}),
      rejectUnauthorized: ut.rejectUnauthorized,
    }
    const ph = new PoolHosts(name, panic, s.healthCheck, s.outlier, logger, { onUnhealthy: recycleWorker('health checks failed'), onEjected: recycleWorker('ejected'), tlsConnect })
    ph.cluster.upstreamTls = ut
    return ph
  }
  // the workers' pool always exists: the supervisor fills it, a reload may start workers
  pools.add(newPool(WORKERS_POOL, config.panic, config))
  const supervisor = new Supervisor({ config, cluster: pools.get(WORKERS_POOL)!.cluster, logger })

  /** every pool of `c` made to exist with its hosts and settings; pools that left drain and go */
  const syncPools = (c: Config): void => {
    const wanted = new Map<string, Pick<Config, 'upstreams' | 'dnsUpstreams' | 'healthCheck' | 'outlier' | 'timeouts' | 'tls'>>()
    if (hasUpstreams(c)) wanted.set(DEFAULT_POOL, c)
    for (const [name, p] of Object.entries(c.pools)) wanted.set(name, p)
    for (const name of pools.names()) {
      if (name === WORKERS_POOL || wanted.has(name)) continue
      pools.get(name)!.retireAll(c.shutdown.timeoutMs)
      pools.remove(name)
    }
    for (const [name, p] of wanted) {
      let ph = pools.get(name)
      if (ph === undefined) {
        ph = newPool(name, c.panic, p)
        pools.add(ph)
        if (started) ph.start()
      } else {
        ph.configure(c.panic, p.healthCheck, p.outlier)
        // a proxy process takes a discovering pool's hosts from the primary's snapshots only: its
        // config alone would drop the discovered ones until the next snapshot
        if (role === 'proxy' && p.dnsUpstreams.length > 0) continue
      }
      ph.syncHosts(p.upstreams, hostFromUpstream, c.shutdown.timeoutMs)
      if (role !== 'proxy') ph.discover(p.dnsUpstreams, c.dns)
    }
    pools.get(WORKERS_POOL)!.configure(c.panic, c.healthCheck, c.outlier)
  }
  syncPools(config)
  const clusterOf = (name: string): Cluster | undefined => pools.get(name)?.cluster
  const defaultCluster = (): Cluster => clusterOf(hasUpstreams(current) ? DEFAULT_POOL : WORKERS_POOL)!
  const t = config.tracing
  const spans = t?.otlp === undefined || role === 'primary' ? null : new OtlpExporter(t.otlp, t.serviceName, logger)
  const tracer = t === undefined ? null : new Tracer(t.sampleRatio, spans)
  const core = new ProxyCore({
    tally,
    maxBodyBytes: config.limits.maxBodyBytes,
    // the primary of proxy processes serves no request: its processes write the lines
    accessLog: role === 'primary' ? null : accessLogOf(config.log),
    spans,
  })
  const engine = new Engine(core, engineOptions(config, tracer), buildRoutingState(config, clusterOf, tally), {
    tls: config.listen.tls === undefined ? undefined : { certificates: loadCertificates(config.listen.tls), http2: config.listen.http2 },
    upstreamTls,
    logger,
  })
  const proxyServer = engine.server
  const admin = new AdminServer(config.admin)
  const metrics = new Metrics({
    cluster: pools,
    retries: tally,
    inflight: () => core.inflight,
    generation: () => app.generation,
  })
  metrics.workerSource = supervisor
  metrics.dnsSource = () => pools.names().flatMap((n) => pools.get(n)!.dnsTallies())
  // both hooks run on every try / request: plain field updates, no allocation
  // a proxy process sends every try's outcome to the primary's outlier detectors instead (cores/)
  const passive = options.passiveHealth
  core.observer = {
    tryEnded: passive === undefined
      ? (host, outcome) => {
          host.outlier?.tryEnded(host, outcome)
          metrics.tryEnded(host, outcome)
        }
      : (host, outcome) => {
          passive.tryEnded(host, outcome)
          metrics.tryEnded(host, outcome)
        },
    requestEnded (ex, ms) {
      metrics.requestEnded(ex.host, ex.status, ms)
    },
  }

  /**
   * Everything of `next` that applies live, in one synchronous step (no request runs in between):
   * pools and their hosts, then the routing state swapped whole, the engine's limits, the
   * idempotency routes.
   */
  const applyLive = (next: Config, certificates: CertificateSet | undefined): void => {
    if (certificates !== undefined) engine.useCertificates(certificates)
    syncPools(next)
    engine.o = engineOptions(next, tracer)
    engine.routing = buildRoutingState(next, clusterOf, tally, engine.routing)
    core.maxBodyBytes = next.limits.maxBodyBytes
    if (core.idempotency !== null && next.idempotency.routes.length > 0) core.idempotency.routes = idempotencyRoutes(next.idempotency)
    current = next
  }
  let reloading: Promise<unknown> = Promise.resolve()
  const reloadOnce = async (): Promise<ReloadResult> => {
    let next: Config
    try {
      next = options.reloadConfig === undefined ? current : options.reloadConfig()
    } catch (err) {
      const reason = `the config could not be re-read: ${(err as Error).message}`
      logger.error({ generation: supervisor.generation, reason }, `reload refused: ${reason}; the running config is unchanged`)
      return { ok: false, generation: supervisor.generation, reason, refused: [], problems: err instanceof ConfigError ? [...err.problems] : [(err as Error).message] }
    }
    const refused = notLiveChanges(current, next)
    if (refused.length > 0) {
      const reason = `these changes need a restart: ${refused.join(', ')}`
      logger.error({ generation: supervisor.generation, refused }, `reload refused: ${reason}; the running config is unchanged`)
      return { ok: false, generation: supervisor.generation, reason, refused, problems: refused.map((k) => `${k}: changed, and cannot apply live (needs a restart)`) }
    }
    // the certificate files are re-read (same paths or not), and a new pool's upstream CA read: a bad
    // one refuses the reload whole (loaded here, before anything changed, so applying cannot fail)
    let certificates: CertificateSet | undefined
    try {
      certificates = next.listen.tls === undefined ? undefined : loadCertificates(next.listen.tls)
      for (const [name, p] of Object.entries(next.pools)) tlsCache.get(p.tls, `pools.${name}.tls`)
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err
      const reason = `the TLS certificates could not be loaded: ${err.problems.join('; ')}`
      logger.error({ generation: supervisor.generation, problems: err.problems }, `reload refused: ${reason}; the certificates serving are kept`)
      return { ok: false, generation: supervisor.generation, reason, refused: [], problems: [...err.problems] }
    }
    // the workers first: a new generation that fails leaves everything as it was
    const rolled = await supervisor.rollTo(next)
    if (!rolled.ok) return rolled
    applyLive(next, certificates)
    app.dataPlane?.configChanged(next)
    logger.info({ generation: rolled.generation, routes: next.routes.length, pools: pools.names() }, 'reload applied')
    return rolled
  }

  // the state tier is connected only when a feature needs it
  const redis = config.idempotency.routes.length > 0 && role !== 'primary' ? createRedis(config.redis, 'idempotency') : undefined
  if (redis !== undefined) core.idempotency = createIdempotencyGate(config, redis, logger, metricsObserver(metrics), metrics.redisTiming)
  // the control plane watches the state tier for /readyz and logs its loss and return once; Redis down
  // never stops a start (cli.ts): keyed and session routes answer 503 until it is back
  let stateMonitor: RedisClient | undefined
  if (role !== 'proxy' && redisNeed(config) !== 'none') {
    try {
      stateMonitor = createRedis(config.redis, 'monitor')
      logStateTransitions(stateMonitor, describeRedis(config.redis), logger)
    } catch { /* no Redis configured nor started: /readyz says so */ }
  }
  const missing = (): string[] => stateMonitor === undefined
    ? (redisNeed(config) === 'none' ? [] : ['redis'])
    : (stateMonitor.status === 'ready' ? [] : ['redis'])

  // readiness is the proxy's, not the process's: ready only while the listener is bound and until a
  // drain starts, so a load balancer or a Kubernetes probe never sends to a port that refuses or closes
  let serving = false
  const app: App = {
    core, admin, proxyServer, supervisor, metrics, pools, engine,
    dataPlane: null,
    // a proxy process: the primary validated the certificates before it sent the config; they are
    // read again here, each process building its own contexts
    applyConfig (next: Config): void {
      let certificates: CertificateSet | undefined
      try {
        certificates = next.listen.tls === undefined ? undefined : loadCertificates(next.listen.tls)
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err
        logger.error({ problems: err.problems }, 'the TLS certificates could not be re-read: the ones serving are kept')
      }
      applyLive(next, certificates)
    },
    get config () { return current },
    get cluster () { return defaultCluster() },
    get generation () { return supervisor.generation },
    async start () {
      const control = role !== 'proxy'
      started = true
      app.dataPlane?.prepare()
      if (control) pools.start()
      // the first clients find the discovered hosts (each name answered or failed once, bounded by dns.timeoutMs)
      if (control) await Promise.all(pools.names().map((n) => pools.get(n)!.resolved()))
      if (control) await listen(admin.server, config.admin.port, config.admin.host)
      // the first workers are up (or failed and backing off) before the proxy port opens, so the
      // first clients are served rather than answered 503
      if (control) await supervisor.start()
      let proxy: string
      if (app.dataPlane !== null) proxy = await app.dataPlane.listen()
      else {
        // a proxy process binds what the primary says (with reusePort: the port the first one got;
        // with handoff: nothing, the primary sends it each connection)
        const spec = options.listen ?? { port: config.listen.port, host: config.listen.host, reusePort: false, handoff: false }
        if (spec.handoff) proxy = `${engine.tls ? 'https' : 'http'}://${spec.host.includes(':') ? `[${spec.host}]` : spec.host}:${spec.port}`
        else {
          await listen(proxyServer, spec.port, spec.host, spec.reusePort)
          proxy = urlOf(proxyServer, engine.tls ? 'https' : 'http')
        }
      }
      serving = true
      return { proxy, admin: control ? urlOf(admin.server) : '' }
    },
    reopenLogs () {
      if (app.dataPlane !== null) app.dataPlane.reopenLogs()
      else core.reopenLogs()
    },
    reload () {
      // one reload at a time, in order: each compares against what the one before applied
      const r = reloading.then(reloadOnce, reloadOnce)
      reloading = r.catch(() => {})
      return r
    },
    async stop (o = {}) {
      // a start that failed half-way has no balancer in front to wait for
      const grace = serving ? o.acceptGraceMs ?? current.shutdown.acceptGraceMs : 0
      serving = false
      if (app.dataPlane !== null) await app.dataPlane.drain(grace)
      else {
        engine.beginDrain()
        if (grace > 0) {
          logger.info({ acceptGraceMs: grace }, 'draining: /readyz answers 503, the port accepts until the grace ends')
          await new Promise((resolve) => setTimeout(resolve, grace))
        }
        engine.close()
        const drained = await Promise.race([
          core.idle().then(() => true),
          new Promise<boolean>((resolve) => setTimeout(resolve, current.shutdown.timeoutMs, false).unref()),
        ])
        if (!drained) logger.warn({ inflight: core.inflight }, 'shutdown timeout: closing with requests in flight')
      }
      engine.closeAll()
      core.close()
      await supervisor.stop()
      admin.server.close()
      admin.server.closeAllConnections()
      pools.close()
      if (core.idempotency !== null) await core.idempotency.core.store.close()
      if (redis !== undefined) await closeRedis(redis)
      if (stateMonitor !== undefined) await closeRedis(stateMonitor)
    },
  }

  admin.route('GET', '/healthz', (_req, res) => sendJson(res, 200, { status: 'ok' }), 'open')
  admin.route('GET', '/readyz', (_req, res) => {
    const n = pools.upCount()
    const ready = serving && n > 0
    // a missing dependency is named, not made a 503: every replica shares the Redis, so an outage would
    // take them all out of the balancer, and the routes that need no state serve on
    sendJson(res, ready ? 200 : 503, { ready, listening: serving, healthyUpstreams: n, panic: pools.panic, missing: missing() })
  }, 'open')
  const ownRow = (): ProcessRow => ({
    pid: process.pid, requests: metrics.requestsTotal(), inflight: core.inflight, connections: engine.connections, startedAt, snapshot: 0,
  })
  admin.route('GET', '/status', async (_req, res) => {
    await app.dataPlane?.refresh()
    const processes = app.dataPlane?.status() ?? [ownRow()]
    const totals = { requests: 0, inflight: 0, connections: 0 }
    for (const p of processes) {
      totals.requests += p.requests
      totals.inflight += p.inflight
      totals.connections += p.connections
    }
    sendJson(res, 200, {
      generation: app.generation,
      panic: pools.panic,
      pools: pools.panics(),
      routes: current.routes.length,
      upstreams: pools.names().flatMap((pool) => pools.get(pool)!.cluster.hosts.map((h) => ({ ...h.toJSON(), pool }))),
      workers: supervisor.status(),
      processes,
      totals,
    })
  })
  admin.route('POST', '/reload', async (_req, res) => {
    const r = await app.reload()
    if (r.ok) {
      sendJson(res, 200, { generation: r.generation })
      return
    }
    // one shape for every refusal (RFC 9457): each problem, and the keys that need a restart
    const [problems, keys] = 'refused' in r ? [r.problems, r.refused] : [[r.reason], []]
    const body = JSON.stringify({ ...JSON.parse(problemBody('CLAYLB_RELOAD_REFUSED', r.reason)) as object, problems, keys, generation: r.generation })
    res.writeHead(409, { 'content-type': 'application/problem+json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' })
    res.end(body)
  })
  admin.route('POST', '/workers/:id/recycle', (_req, res, params) => {
    const w = supervisor.find(params['id']!)
    if (w === undefined) sendJson(res, 404, { error: 'no such worker', id: params['id'] })
    else if (!supervisor.requestRecycle(w, 'admin')) sendJson(res, 409, { error: `worker ${w.id} is ${w.state}, not serving, or already queued for recycling` })
    else sendJson(res, 202, { recycling: w.id, slot: w.slot })
  })
  admin.route('GET', '/metrics', async (_req, res) => {
    await app.dataPlane?.refresh({ processMetrics: true })
    const text = await metrics.text()
    res.writeHead(200, { 'content-type': metrics.contentType, 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' })
    res.end(text)
  }, 'metrics')
  registerUpstreamRoutes(admin, pools, config.shutdown.timeoutMs, logger, (h, ms) => supervisor.hostIdle(h, ms), (h) => supervisor.drained(h))
  return app
}

function listen (server: Server, port: number, host: string, reusePort = false): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    const done = (): void => { server.off('error', reject); resolve() }
    // reusePort (Node ≥ 22.12, cores/count.ts) binds this process's own socket; exclusive keeps
    // node:cluster from routing the listen through the primary's shared handle
    if (reusePort) server.listen({ port, host, exclusive: true, reusePort } as ListenOptions, done)
    else server.listen(port, host, done)
  })
}

function urlOf (server: Server, scheme = 'http'): string {
  const a = server.address() as AddressInfo
  const host = a.family === 'IPv6' ? `[${a.address}]` : a.address
  return `${scheme}://${host}:${a.port}`
}
