/**
 * @module control/control-plane
 * The control plane's composition root: the pools with their health checks and outlier detectors,
 * the worker supervisor, the admin API, the metrics registry, reloads. It drives a data plane through
 * a DataPlaneHandle: in this process (control/process/in-process.ts, one process) or in proxy
 * processes (control/process/primary.ts), whichever `dataPlane` makes. No logic of its own beyond the
 * wiring.
 */
import type { Config } from '../shared/config/schema.js'
import type { Logger } from '../shared/log.js'
import { ConfigError } from '../shared/config/error.js'
import { DEFAULT_POOL, WORKERS_POOL, hasUpstreams } from '../shared/config/routing.js'
import { closeRedis, createRedis, describeRedis, logStateTransitions, type RedisClient } from '../shared/redis/index.js'
import { redisNeed } from '../shared/redis/embedded.js'
import { loadCertificates, UpstreamTlsCache, type CertificateSet } from '../shared/tls/certificates.js'
import type { Cluster } from '../data/upstream/cluster.js'
import { Host } from '../data/upstream/host.js'
import { PoolHosts, PoolRegistry } from './pools/pools.js'
import { notLiveChanges } from './pools/reload-plan.js'
import { AdminServer } from './admin/admin.js'
import { registerUpstreamRoutes } from './admin/upstreams.js'
import { registerControlRoutes } from './admin/control-routes.js'
import { Supervisor, type RolloutResult } from './supervisor/supervisor.js'
import { Metrics } from './metrics/metrics.js'
import type { ControlView, DataPlaneHandle } from './process/data-plane-handle.js'
import { DashboardFeed, type ReloadRecord } from './dashboard/feed.js'
import { registerDashboardRoutes } from './dashboard/routes.js'

export interface ControlPlane {
  /** the config applied last (a reload replaces it) */
  readonly config: Config
  /** the default pool's hosts (the top-level upstreams, else the workers) */
  readonly cluster: Cluster
  /** every pool's hosts, by pool name */
  readonly pools: PoolRegistry
  readonly admin: AdminServer
  readonly supervisor: Supervisor
  readonly metrics: Metrics
  /** the data plane it drives */
  readonly dataPlane: DataPlaneHandle
  /** the worker generation serving */
  readonly generation: number
  /** reloads applied since the start, and what the last one (applied or refused) did */
  readonly reloads: { readonly applied: number, readonly last: ReloadRecord | null }
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

export interface ControlPlaneOptions {
  /** re-reads the config file with the command line's overrides; without it a reload reuses `config` */
  reloadConfig?: () => Config
  /** makes the data plane this control plane drives (given the pools, once they exist) */
  dataPlane: (view: ControlView & { readonly tlsCache: UpstreamTlsCache }) => DataPlaneHandle
}

export function hostFromUpstream (u: { url: string, weight: number, id?: string | undefined }): Host {
  return new Host({ id: u.id ?? new URL(u.url).host, url: u.url, weight: u.weight })
}

export function createControlPlane (config: Config, logger: Logger, options: ControlPlaneOptions): ControlPlane {
  let current = config
  let started = false
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
      } else ph.configure(c.panic, p.healthCheck, p.outlier)
      ph.syncHosts(p.upstreams, hostFromUpstream, c.shutdown.timeoutMs)
      ph.discover(p.dnsUpstreams, c.dns)
    }
    pools.get(WORKERS_POOL)!.configure(c.panic, c.healthCheck, c.outlier)
  }
  syncPools(config)
  const clusterOf = (name: string): Cluster | undefined => pools.clusterOf(name)

  // the data plane and the supervisor wait on each other through these (no field set from outside)
  const supervisor: Supervisor = new Supervisor({
    config,
    cluster: pools.get(WORKERS_POOL)!.cluster,
    logger,
    drain: { drained: (h) => dataPlane.drained(h), hostIdle: (h, ms) => dataPlane.hostIdle(h, ms) },
  })
  const dataPlane: DataPlaneHandle = options.dataPlane({
    get config () { return current },
    pools,
    get generation () { return supervisor.generation },
    tlsCache,
  })
  const admin = new AdminServer(config.admin)
  const metrics = new Metrics({
    counters: dataPlane.counters,
    cluster: pools,
    inflight: () => dataPlane.inflight,
    generation: () => supervisor.generation,
    workers: supervisor,
    dns: () => pools.names().flatMap((n) => pools.get(n)!.dnsTallies()),
    ...(dataPlane.processes !== undefined ? { processes: dataPlane.processes } : {}),
  })

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
    // in one synchronous step (no request runs in between): pools and their hosts, then the data
    // plane's routing state swapped whole, its limits, the idempotency routes
    syncPools(next)
    current = next
    dataPlane.configChanged(next, certificates)
    logger.info({ generation: rolled.generation, routes: next.routes.length, pools: pools.names() }, 'reload applied')
    return rolled
  }

  // the control plane watches the state tier for /readyz and logs its loss and return once; Redis down
  // never stops a start (cli.ts): keyed and session routes answer 503 until it is back
  let stateMonitor: RedisClient | undefined
  if (redisNeed(config) !== 'none') {
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
  const reloads: { applied: number, last: ReloadRecord | null } = { applied: 0, last: null }
  const plane: ControlPlane = {
    admin, supervisor, metrics, pools, dataPlane,
    get config () { return current },
    get cluster () { return clusterOf(hasUpstreams(current) ? DEFAULT_POOL : WORKERS_POOL)! },
    get generation () { return supervisor.generation },
    reloads,
    async start () {
      started = true
      dataPlane.prepare()
      pools.start()
      // the first clients find the discovered hosts (each name answered or failed once, bounded by dns.timeoutMs)
      await Promise.all(pools.names().map((n) => pools.get(n)!.resolved()))
      await listen(admin, config.admin.port, config.admin.host)
      // the first workers are up (or failed and backing off) before the proxy port opens, so the
      // first clients are served rather than answered 503
      await supervisor.start()
      const proxy = await dataPlane.listen()
      serving = true
      return { proxy, admin: admin.url() }
    },
    reopenLogs () {
      dataPlane.reopenLogs()
    },
    reload () {
      // one reload at a time, in order: each compares against what the one before applied
      const r = reloading.then(reloadOnce, reloadOnce)
      reloading = r.catch(() => {})
      void r.then((x) => {
        if (x.ok) reloads.applied++
        reloads.last = { at: new Date().toISOString(), ok: x.ok, generation: x.generation, ...(x.ok ? {} : { reason: x.reason }) }
      }, (err: Error) => { reloads.last = { at: new Date().toISOString(), ok: false, generation: supervisor.generation, reason: err.message } })
      return r
    },
    async stop (o = {}) {
      // a start that failed half-way has no balancer in front to wait for
      const grace = serving ? o.acceptGraceMs ?? current.shutdown.acceptGraceMs : 0
      serving = false
      dashboard.close()
      await dataPlane.drain(grace)
      await supervisor.stop()
      admin.server.close()
      admin.server.closeAllConnections()
      pools.close()
      if (stateMonitor !== undefined) await closeRedis(stateMonitor)
    },
  }

  registerControlRoutes(admin, plane, { serving: () => serving, missing })
  registerUpstreamRoutes(admin, pools, config.shutdown.timeoutMs, logger, dataPlane)
  // the admin dashboard's data (control/dashboard/); it ticks only while a page is open
  const dashboard = new DashboardFeed(plane)
  registerDashboardRoutes(admin, dashboard)
  return plane
}

function listen (admin: AdminServer, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    admin.server.once('error', reject)
    admin.server.listen(port, host, () => { admin.server.off('error', reject); resolve() })
  })
}
