/**
 * @module control/admin/control-routes
 * The control plane's admin routes: /healthz, /readyz, /status, /metrics, POST /reload and
 * POST /workers/:id/recycle (the upstream controls are admin/upstreams.ts).
 */
import type { Config } from '../../shared/config/schema.js'
import { problemBody } from '../../shared/errors.js'
import type { PoolRegistry } from '../pools/pools.js'
import type { Supervisor, RolloutResult } from '../supervisor/supervisor.js'
import type { Metrics } from '../metrics/metrics.js'
import type { DataPlaneHandle } from '../process/data-plane-handle.js'
import { sendJson, type AdminServer } from './admin.js'

/** what the routes read and drive of the control plane (control/control-plane.ts) */
export interface ControlRoutesPlane {
  readonly config: Config
  readonly pools: PoolRegistry
  readonly supervisor: Supervisor
  readonly metrics: Metrics
  readonly dataPlane: DataPlaneHandle
  readonly generation: number
  reload (): Promise<RolloutResult | { ok: false, generation: number, reason: string, refused: string[], problems: string[] }>
}

export interface Readiness {
  /** the proxy listens and no drain has begun */
  serving (): boolean
  /** dependencies that are down (named, never a 503: see /readyz) */
  missing (): string[]
}

export function registerControlRoutes (admin: AdminServer, plane: ControlRoutesPlane, readiness: Readiness): void {
  const { pools, supervisor, metrics, dataPlane } = plane
  admin.route('GET', '/healthz', (_req, res) => sendJson(res, 200, { status: 'ok' }), 'open')
  admin.route('GET', '/readyz', (_req, res) => {
    const n = pools.upCount()
    const serving = readiness.serving()
    const ready = serving && n > 0
    // a missing dependency is named, not made a 503: every replica shares the Redis, so an outage would
    // take them all out of the balancer, and the routes that need no state serve on
    sendJson(res, ready ? 200 : 503, { ready, listening: serving, healthyUpstreams: n, panic: pools.panic, missing: readiness.missing() })
  }, 'open')
  admin.route('GET', '/status', async (_req, res) => {
    await dataPlane.refresh()
    const processes = dataPlane.status()
    const totals = { requests: 0, inflight: 0, connections: 0 }
    for (const p of processes) {
      totals.requests += p.requests
      totals.inflight += p.inflight
      totals.connections += p.connections
    }
    sendJson(res, 200, {
      generation: plane.generation,
      panic: pools.panic,
      pools: pools.panics(),
      routes: plane.config.routes.length,
      upstreams: pools.names().flatMap((pool) => pools.get(pool)!.cluster.hosts.map((h) => ({ ...h.toJSON(), pool }))),
      workers: supervisor.status(),
      processes,
      totals,
    })
  })
  admin.route('POST', '/reload', async (_req, res) => {
    const r = await plane.reload()
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
    await dataPlane.refresh({ processMetrics: true })
    const text = await metrics.text()
    res.writeHead(200, { 'content-type': metrics.contentType, 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' })
    res.end(text)
  }, 'metrics')
}
