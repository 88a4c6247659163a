/**
 * @module data/data-plane
 * The data plane's composition root: what a process needs to serve requests (the engine, the routing
 * state, the idempotency gate, the counters), built from a Config and the pools it routes to. A proxy
 * process builds one over its snapshot-fed pools (data/process/proxy-process.ts); a single process
 * builds one over the control plane's pools (control/control-plane.ts). It never judges a host: a
 * try's outcome goes to `passiveHealth`, whoever that is. No logic of its own beyond the wiring.
 */
import type { AddressInfo, ListenOptions, Server } from 'node:net'
import type { Config } from '../shared/config/schema.js'
import type { Logger } from '../shared/log.js'
import { createAccessLog, DEFAULT_FIELDS, type AccessLog } from './observe/access-log.js'
import { createLineSink } from './observe/log-sink.js'
import { Tracer } from './observe/trace.js'
import { OtlpExporter } from './observe/otlp.js'
import type { HeadObserve } from './http/head.js'
import { ConfigError } from '../shared/config/error.js'
import { closeRedis, createRedis } from '../shared/redis/index.js'
import { loadCertificates, UpstreamTlsCache, type CertificateSet } from '../shared/tls/certificates.js'
import type { ListenSpec } from '../shared/process/protocol.js'
import type { Cluster } from './upstream/cluster.js'
import type { Host } from './upstream/host.js'
import type { TryOutcome } from './upstream/retry-policy.js'
import { buildRoutingState } from './routing/routing-state.js'
import { ProxyCore } from './engine/proxy.js'
import { Engine, type EngineOptions } from './engine/engine.js'
import { createIdempotencyGate, idempotencyRoutes } from './idempotency/setup.js'
import { countingObserver } from './counting/idempotency-observer.js'
import { Counters, type HostsView } from './counting/counters.js'
import { buildPolicy, type Policy, type TokenSources } from './policy/policy.js'
import { redisTake, type TakeTokens } from '../shared/redis/rate-limit-script.js'
import { StateUnavailableError } from '../shared/redis/errors.js'
import type { RedisClient } from '../shared/redis/client.js'

/** the pools a data plane routes to, by name */
export interface ClusterSource extends HostsView {
  clusterOf (name: string): Cluster | undefined
}

/** where every try's outcome goes for passive health (an outlier detector, here or in the primary) */
export interface TryJudgeSink {
  tryEnded (host: Host, outcome: TryOutcome): void
}

export interface DataPlaneOptions {
  logger: Logger
  clusters: ClusterSource
  /** default: each host's own outlier detector (`host.outlier`, set by the control plane's pools) */
  passiveHealth?: TryJudgeSink
  /** the pools' upstream TLS setups: the engine's default is the same object as the default pool's */
  tlsCache: UpstreamTlsCache
  /** a proxy process: a `local` rate limit's tokens, leased from the primary (data/policy/primary-tokens.ts) */
  localTokens?: TakeTokens
  /** TLS session ticket keys shared with the other proxy processes (default: this process's own) */
  ticketKeys?: Buffer
}

export interface DataPlane {
  readonly config: Config
  readonly core: ProxyCore
  readonly engine: Engine
  readonly counters: Counters
  /** bind the port as `spec` says (handoff: nothing, connections are adopted); resolves with the proxy's URL */
  listen (spec: ListenSpec): Promise<string>
  /**
   * apply a config already validated (pools synced by whoever owns them): routing, limits,
   * idempotency routes; `certificates` when the listener's were re-read
   */
  applyConfig (next: Config, certificates?: CertificateSet): void
  /** SIGUSR1 (logrotate's postrotate): the access log file is opened again */
  reopenLogs (): void
  /** stop accepting after `acceptGraceMs`, wait for the requests in flight (bounded by shutdown.timeoutMs), close */
  drain (acceptGraceMs: number): Promise<void>
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

export function createDataPlane (config: Config, o: DataPlaneOptions): DataPlane {
  const { logger, clusters } = o
  let current = config
  const counters = new Counters(clusters)
  const clusterOf = (name: string): Cluster | undefined => clusters.clusterOf(name)
  // the state tier is connected only when a feature needs it
  const redis = config.idempotency.routes.length > 0 ? createRedis(config.redis, 'idempotency') : undefined
  const passive = o.passiveHealth
  // tracing.* is not live on reload: the tracer and its exporter are this data plane's for its life
  const t = config.tracing
  const spans = t?.otlp === undefined ? null : new OtlpExporter(t.otlp, t.serviceName, logger)
  const tracer = t === undefined ? null : new Tracer(t.sampleRatio, spans)
  // both hooks run on every try / request: plain field updates, no allocation
  const core = new ProxyCore({
    tally: counters.retries,
    maxBodyBytes: config.limits.maxBodyBytes,
    accessLog: accessLogOf(config.log),
    spans,
    idempotency: redis === undefined ? null : createIdempotencyGate(config, redis, logger, countingObserver(counters), counters.redisTiming),
    observer: {
      tryEnded: passive === undefined
        ? (host, outcome) => {
            host.outlier?.tryEnded(host, outcome)
            counters.tryEnded(host, outcome)
          }
        : (host, outcome) => {
            passive.tryEnded(host, outcome)
            counters.tryEnded(host, outcome)
          },
      requestEnded (ex, ms) {
        counters.requestEnded(ex.host, ex.route === null ? null : ex.route.metrics, ex.status, ms)
      },
    },
  })
  // access rules and rate limits (data/policy): a global limit's Redis client is made when one first needs it
  let limitsRedis: RedisClient | undefined
  let stateErrorLogged = 0
  const tokenSources: TokenSources = {
    global: () => {
      if (limitsRedis === undefined) {
        try {
          limitsRedis = createRedis(current.redis, 'rate-limits')
        } catch (err) {
          // no Redis named nor started: every take fails, onStateDown decides
          return () => Promise.reject(err instanceof Error ? err : new StateUnavailableError(String(err)))
        }
      }
      return redisTake(limitsRedis, current.redis.keyPrefix)
    },
    local: o.localTokens ?? null,
    onStateError: (err) => {
      const now = Date.now()
      if (now - stateErrorLogged < 10_000) return
      stateErrorLogged = now
      logger.warn({ error: (err as Error).message }, 'rate limits: Redis unreachable; global limits decide by their onStateDown')
    },
  }
  const policyOf = (c: Config, previous: Policy | null): Policy | null => buildPolicy(c, counters.limits, tokenSources, previous)
  const engine = new Engine(core, engineOptions(config, tracer), buildRoutingState(config, clusterOf, counters.retries, undefined, policyOf(config, null), counters), {
    tls: config.listen.tls === undefined ? undefined : { certificates: loadCertificates(config.listen.tls), http2: config.listen.http2, ticketKeys: o.ticketKeys },
    proxyProtocol: config.listen.proxyProtocol,
    upstreamTls: o.tlsCache.get(config.tls, 'tls'),
    logger,
  })

  return {
    get config () { return current },
    core,
    engine,
    counters,
    async listen (spec) {
      const scheme = engine.tls ? 'https' : 'http'
      if (spec.handoff) return `${scheme}://${spec.host.includes(':') ? `[${spec.host}]` : spec.host}:${spec.port}`
      await listen(engine.server, spec.port, spec.host, spec.reusePort)
      return urlOf(engine.server, scheme)
    },
    // one synchronous step (no request runs in between): the routing state swapped whole
    applyConfig (next, certificates) {
      if (certificates !== undefined) engine.useCertificates(certificates)
      engine.o = engineOptions(next, tracer)
      engine.routing = buildRoutingState(next, clusterOf, counters.retries, engine.routing, policyOf(next, engine.routing.policy), counters)
      core.maxBodyBytes = next.limits.maxBodyBytes
      if (core.idempotency !== null && next.idempotency.routes.length > 0) core.idempotency.routes = idempotencyRoutes(next.idempotency)
      current = next
    },
    reopenLogs () {
      core.reopenLogs()
    },
    async drain (acceptGraceMs) {
      engine.beginDrain()
      if (acceptGraceMs > 0) {
        logger.info({ acceptGraceMs }, 'draining: /readyz answers 503, the port accepts until the grace ends')
        await new Promise((resolve) => setTimeout(resolve, acceptGraceMs))
      }
      engine.close()
      const drained = await Promise.race([
        core.idle().then(() => true),
        new Promise<boolean>((resolve) => setTimeout(resolve, current.shutdown.timeoutMs, false).unref()),
      ])
      if (!drained) logger.warn({ inflight: core.inflight }, 'shutdown timeout: closing with requests in flight')
      engine.closeAll()
      // the access log's last lines, after a batch still being written; a stdout nobody reads any more
      // must not hold the shutdown: a second at most
      await Promise.race([core.close(), new Promise((resolve) => setTimeout(resolve, 1000).unref())])
      if (core.idempotency !== null) await core.idempotency.core.store.close()
      if (redis !== undefined) await closeRedis(redis)
      if (limitsRedis !== undefined) await closeRedis(limitsRedis)
      engine.routing.policy?.retire(null)
    },
  }
}

/** a data plane's certificates re-read for a config the primary already validated (kept on failure) */
export function rereadCertificates (next: Config, logger: Logger): CertificateSet | undefined {
  try {
    return next.listen.tls === undefined ? undefined : loadCertificates(next.listen.tls)
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    logger.error({ problems: err.problems }, 'the TLS certificates could not be re-read: the ones serving are kept')
    return undefined
  }
}

function listen (server: Server, port: number, host: string, reusePort = false): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    const done = (): void => { server.off('error', reject); resolve() }
    // reusePort (Node ≥ 22.12, control/process/count.ts) binds this process's own socket; exclusive
    // keeps node:cluster from routing the listen through the primary's shared handle
    if (reusePort) server.listen({ port, host, exclusive: true, reusePort } as ListenOptions, done)
    else server.listen(port, host, done)
  })
}

export function urlOf (server: Server, scheme = 'http'): string {
  const a = server.address() as AddressInfo
  const host = a.family === 'IPv6' ? `[${a.address}]` : a.address
  return `${scheme}://${host}:${a.port}`
}
