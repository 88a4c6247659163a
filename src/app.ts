/**
 * @module app
 * The composition root: builds the modules from a Config and wires them. No logic of its own.
 */
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Config } from './config/schema.js'
import { createAccessLog, type Logger } from './log.js'
import { Cluster } from './upstream/cluster.js'
import { Host } from './upstream/host.js'
import { createBalancer, type Balancer } from './balancer/balancer.js'
import { ProxyCore } from './proxy/proxy.js'
import { createListener } from './proxy/listener.js'
import { WebSocketTunnel } from './proxy/websocket.js'
import { AdminServer, sendJson } from './admin/admin.js'

export interface App {
  readonly config: Config
  readonly cluster: Cluster
  readonly balancer: Balancer
  readonly core: ProxyCore
  readonly admin: AdminServer
  readonly proxyServer: Server
  generation: number
  start (): Promise<{ proxy: string, admin: string }>
  /** stop accepting, drain in-flight requests (bounded by shutdownTimeoutMs), close everything */
  stop (): Promise<void>
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

export function createApp (config: Config, logger: Logger): App {
  const cluster = new Cluster()
  for (const u of config.upstreams) cluster.add(hostFromUpstream(config, u))
  const balancer = createBalancer(config.balancer.policy, cluster)
  const core = new ProxyCore({
    balancer,
    retry: config.retry,
    requestTimeoutMs: config.timeouts.requestMs,
    maxBodyBytes: config.limits.maxBodyBytes,
    accessLog: config.log.access ? createAccessLog(config.log.level) : null,
  })
  const ws = new WebSocketTunnel(balancer, logger, config.timeouts.connectMs)
  const proxyServer = createListener(core, ws, {
    maxHeaderBytes: config.limits.maxHeaderBytes,
    headersTimeoutMs: config.timeouts.headersMs,
    requestTimeoutMs: config.timeouts.requestMs,
    idleTimeoutMs: config.timeouts.idleMs,
  })
  const admin = new AdminServer(config.admin.token)

  const app: App = {
    config, cluster, balancer, core, admin, proxyServer,
    generation: 1,
    async start () {
      await listen(proxyServer, config.listen.port, config.listen.host)
      await listen(admin.server, config.admin.port, config.admin.host)
      return { proxy: urlOf(proxyServer), admin: urlOf(admin.server) }
    },
    async stop () {
      proxyServer.close()
      proxyServer.closeIdleConnections()
      const drained = await Promise.race([
        core.idle().then(() => true),
        new Promise<boolean>((resolve) => setTimeout(resolve, config.shutdownTimeoutMs, false).unref()),
      ])
      if (!drained) logger.warn({ inflight: core.inflight }, 'shutdown timeout: closing with requests in flight')
      proxyServer.closeAllConnections()
      ws.close()
      core.close()
      admin.server.close()
      admin.server.closeAllConnections()
      await cluster.close()
    },
  }

  admin.route('GET', '/healthz', (_req, res) => sendJson(res, 200, { status: 'ok' }))
  admin.route('GET', '/readyz', (_req, res) => {
    const n = cluster.availableCount()
    sendJson(res, n > 0 ? 200 : 503, { ready: n > 0, healthyUpstreams: n })
  })
  admin.route('GET', '/status', (_req, res) => sendJson(res, 200, {
    generation: app.generation,
    upstreams: cluster.hosts.map((h) => h.toJSON()),
    workers: [],
  }))
  return app
}

function listen (server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => { server.off('error', reject); resolve() })
  })
}

function urlOf (server: Server): string {
  const a = server.address() as AddressInfo
  const host = a.family === 'IPv6' ? `[${a.address}]` : a.address
  return `http://${host}:${a.port}`
}
