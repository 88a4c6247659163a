/**
 * @module control/dashboard/feed
 * The dashboard's data, made by the primary (the one process that sees every pool, worker and proxy
 * process): once a tick it asks the proxy processes for their counters (the same IPC round trip a
 * scrape makes), turns the difference since the last tick into one chart point per pool and route,
 * keeps the last minutes of points, and sends each subscriber the point and the state of the moment.
 * It ticks only while a dashboard is open: no page open, no cost.
 */
import { NO_UPSTREAM, seriesKey } from '../../data/counting/counters.js'
import type { HostCounters } from '../../data/upstream/host-counters.js'
import type { Metrics } from '../metrics/metrics.js'
import type { PoolRegistry } from '../pools/pools.js'
import type { Supervisor } from '../supervisor/supervisor.js'
import type { DataPlaneHandle } from '../process/data-plane-handle.js'
import { delta, errorsOf, pointOf, type Point, type Reading } from './series.js'

export interface Tick {
  /** ms since the epoch */
  t: number
  pools: Record<string, Point>
  routes: Record<string, Point>
}

export interface FeedOptions {
  /** ms between two points */
  intervalMs: number
  /** points kept (intervalMs × points: the charts' span) */
  points: number
  /** the span of an upstream's "recent errors", ms */
  recentErrorsMs: number
}

export const FEED_DEFAULTS: FeedOptions = { intervalMs: 1000, points: 300, recentErrorsMs: 60_000 }

type Subscriber = (event: 'tick', data: { tick: Tick, state: Record<string, unknown> }) => void

/** what the last reload did, for the dashboard (and whoever asks) */
export interface ReloadRecord { at: string, ok: boolean, generation: number, reason?: string }

/** what the feed reads of the control plane (control/control-plane.ts) */
export interface DashboardPlane {
  readonly pools: PoolRegistry
  readonly supervisor: Supervisor
  readonly metrics: Metrics
  readonly dataPlane: DataPlaneHandle
  readonly generation: number
  /** reloads applied since the start, and what the last one (applied or refused) did */
  readonly reloads: { readonly applied: number, readonly last: ReloadRecord | null }
}

export class DashboardFeed {
  readonly history: Tick[] = []
  private readonly subscribers = new Set<Subscriber>()
  private timer: NodeJS.Timeout | null = null
  private last = new Map<string, Reading>()
  private lastAt = 0
  /** per upstream key: its failed tries at each of the last ticks (oldest first), for "recent errors" */
  private readonly errorTrail = new Map<string, number[]>()
  private sampling: Promise<void> | null = null
  private state: Record<string, unknown> = {}
  /** why the last tick failed (null: it did not) */
  failure: string | null = null

  constructor (private readonly app: DashboardPlane, readonly o: FeedOptions = FEED_DEFAULTS) {}

  /** a page opened: it gets the history and every tick from now on until `unsubscribe` */
  async subscribe (fn: Subscriber): Promise<{ history: Tick[], state: Record<string, unknown> }> {
    this.subscribers.add(fn)
    if (this.timer === null) {
      this.timer = setInterval(() => { void this.sample() }, this.o.intervalMs)
      this.timer.unref()
    }
    // the first page finds a state at once (later ones the last tick's)
    if (this.history.length === 0 || this.sampling !== null) await this.sample()
    return { history: this.history, state: this.state }
  }

  unsubscribe (fn: Subscriber): void {
    this.subscribers.delete(fn)
    if (this.subscribers.size > 0 || this.timer === null) return
    clearInterval(this.timer)
    this.timer = null
    // a gap: the next page's first point must not span the time nobody watched
    this.last.clear()
  }

  close (): void {
    this.subscribers.clear()
    if (this.timer !== null) clearInterval(this.timer)
    this.timer = null
  }

  /** one tick (one at a time: a slow proxy process delays it, never doubles it) */
  sample (): Promise<void> {
    // a tick that failed leaves the last state standing, and says why on the page
    this.sampling ??= this.read().then(() => { this.failure = null }, (err: Error) => { this.failure = err.message }).finally(() => { this.sampling = null })
    return this.sampling
  }

  private async read (): Promise<void> {
    const app = this.app
    await app.dataPlane.refresh()
    const now = Date.now()
    const seconds = this.lastAt === 0 ? 0 : (now - this.lastAt) / 1000
    const first = this.last.size === 0
    const hosts = app.metrics.hostTotals()
    const routes = app.metrics.routeTotals()
    const tick: Tick = { t: now, pools: {}, routes: {} }
    const next = new Map<string, Reading>()
    const keep = (key: string, m: HostCounters): Reading | undefined => {
      const r: Reading = { codes: [...m.codes], buckets: [...m.buckets], count: m.count, tries: [...m.tries] }
      next.set(key, r)
      return first ? r : this.last.get(key)
    }
    // a pool's point sums its hosts' differences
    const byPool = new Map<string, { codes: number[], buckets: number[], count: number }>()
    for (const m of hosts) {
      if (m.upstream === NO_UPSTREAM) continue
      const before = keep(`h\n${seriesKey(m.pool, m.upstream)}`, m)
      byPool.set(m.pool, delta(m, before, byPool.get(m.pool)))
    }
    for (const m of routes) tick.routes[m.upstream] = pointOf(delta(m, keep(`r\n${seriesKey(m.pool, m.upstream)}`, m)), seconds)
    for (const [pool, d] of byPool) tick.pools[pool] = pointOf(d, seconds)
    this.last = next
    this.lastAt = now
    if (!first) {
      this.history.push(tick)
      if (this.history.length > this.o.points) this.history.shift()
    }
    this.state = await this.stateOf(hosts, routes)
    if (first) return
    for (const fn of this.subscribers) fn('tick', { tick, state: this.state })
  }

  /** everything the page shows besides the charts, as it is now */
  private async stateOf (totals: readonly HostCounters[], routes: readonly HostCounters[]): Promise<Record<string, unknown>> {
    const app = this.app
    const keep = Math.max(2, Math.ceil(this.o.recentErrorsMs / this.o.intervalMs) + 1)
    const errorsOfHost = new Map<string, number>()
    for (const m of totals) {
      const key = seriesKey(m.pool, m.upstream)
      let trail = this.errorTrail.get(key)
      if (trail === undefined) this.errorTrail.set(key, trail = [])
      trail.push(errorsOf(m))
      if (trail.length > keep) trail.shift()
      errorsOfHost.set(key, trail[trail.length - 1]! - trail[0]!)
    }
    const upstreams = app.pools.names().flatMap((pool) => app.pools.get(pool)!.cluster.hosts.map((h) => {
      const j = h.toJSON()
      return { pool, id: h.id, url: h.url, kind: h.kind, state: j['state'], available: h.available, inflight: h.inflight, requests: h.requests, ejections: h.ejections, recentErrors: errorsOfHost.get(seriesKey(pool, h.metricsLabel)) ?? 0 }
    }))
    const s = app.supervisor.stats
    return {
      generation: app.generation,
      reloads: app.reloads,
      panic: app.pools.panics(),
      upstreams,
      processes: app.dataPlane.status(),
      workers: app.supervisor.status(),
      workerStats: { recycles: s.recycles, restarts: s.restarts, crashes: s.crashes, rollouts: s.rollouts, rollbacks: s.rolloutsAbandoned },
      idempotency: app.metrics.idempotencyTotals(),
      rateLimited: await seriesOf(app, 'claylb_rate_limited_total'),
      recentErrorsSeconds: this.o.recentErrorsMs / 1000,
      /** why the tick before this one failed, if it did */
      tickError: this.failure,
      /** each route's pool (the route table's column) */
      routePools: Object.fromEntries(routes.map((r) => [r.upstream, r.pool])),
    }
  }
}

/** a metric's series (labels, value) if it is registered (another feature's; null when absent) */
async function seriesOf (app: DashboardPlane, name: string): Promise<Array<{ labels: Record<string, string | number>, value: number }> | null> {
  const m = app.metrics.registry.getSingleMetric(name)
  if (m === undefined) return null
  const v = await m.get()
  return v.values.map((x) => ({ labels: x.labels as Record<string, string | number>, value: x.value }))
}
