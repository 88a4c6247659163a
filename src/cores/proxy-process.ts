/**
 * @module cores/proxy-process
 * One proxy process: the data plane only. It accepts on the shared port, parses, picks and forwards
 * with its own upstream pools, routing by the primary's last snapshot; it never checks health,
 * ejects, supervises workers or serves the admin API. Try outcomes go to the primary in batches; its
 * counters only when the primary asks. It exits when told to stop (after draining), on SIGTERM, and
 * when the primary is gone (the IPC channel closed), so no proxy process outlives its primary.
 */
import { Socket } from 'node:net'
import type { Config } from '../config/schema.js'
import { createApp, type App } from '../app.js'
import { createLogger } from '../log.js'
import type { Host } from '../upstream/host.js'
import { applySnapshot, type Snapshot } from './snapshot.js'
import { TryReporter } from './try-reporter.js'
import type { FromProxy, ProcessStats, ToProxy } from './protocol.js'

/**
 * the config a proxy process runs: the primary's, minus what the control plane judges (its
 * supervisor is never started: workers.count stays, since the routes read it)
 */
export function proxyConfigOf (c: Config): Config {
  const judgeNothing = <P extends Pick<Config, 'healthCheck' | 'outlier'>>(p: P): P => ({
    ...p, healthCheck: { ...p.healthCheck, enabled: false }, outlier: { ...p.outlier, enabled: false },
  })
  return {
    ...judgeNothing(c),
    pools: Object.fromEntries(Object.entries(c.pools).map(([name, p]) => [name, judgeNothing(p)])),
    // the primary decides panic mode; its hosts' `available` arrive already decided
    panic: { ...c.panic, thresholdPercent: 0 },
  }
}

function send (msg: FromProxy): void {
  if (process.connected) process.send!(msg)
}

export function runProxyProcess (): Promise<void> {
  return new Promise((resolve) => {
    const onBoot = (msg: ToProxy): void => {
      if (msg.type !== 'boot') return
      process.off('message', onBoot)
      boot(msg).then(resolve, (err: unknown) => {
        // the primary's start fails with this message; nothing of ours may keep the process up
        const exit = (): never => process.exit(1)
        if (process.connected) process.send!({ type: 'boot-failed', message: (err as Error).message } satisfies FromProxy, exit)
        else exit()
      })
    }
    process.on('message', onBoot)
    send({ type: 'hello' })
    // the primary is gone before it booted us
    process.once('disconnect', () => process.exit(1))
  })
}

async function boot (msg: Extract<ToProxy, { type: 'boot' }>): Promise<void> {
  const config = proxyConfigOf(msg.config)
  const logger = createLogger(config.log.level)
  // every try's outcome goes to the primary's outlier detector, in batches
  const reporter = new TryReporter((events) => send({ type: 'tries', events }))
  const app = createApp(config, logger, { role: 'proxy', listen: msg.listen, passiveHealth: reporter })
  const startedAt = new Date().toISOString()
  let applied = 0
  const apply = (s: Snapshot): void => {
    if (s.version <= applied) return
    const removed = applySnapshot(app.pools, s)
    applied = s.version
    // a host gone from the snapshot finishes what it carries, then its sockets close
    for (const h of removed) void h.waitIdle(config.shutdown.timeoutMs).then(() => h.close())
    send({ type: 'applied', version: applied })
  }
  apply(msg.snapshot)

  let stopping = false
  // SIGTERM and a primary gone wait the config's grace; the primary's stop names the grace it waits
  const stop = (acceptGraceMs?: number): void => {
    if (stopping) return
    stopping = true
    // the tries of the grace still feed passive health: the reporter closes once the drain is over
    app.stop(acceptGraceMs === undefined ? {} : { acceptGraceMs }).then(() => { reporter.close(); process.exit(0) }, (err: unknown) => {
      logger.error({ err }, 'proxy process stop failed')
      process.exit(1)
    })
  }
  process.on('message', (m: ToProxy, handle?: unknown) => {
    if (m.type === 'connection') {
      if (handle instanceof Socket) app.engine.adopt(handle)
    } else if (m.type === 'snapshot') apply(m.snapshot)
    else if (m.type === 'config') app.applyConfig(proxyConfigOf(m.config))
    else if (m.type === 'reopen-logs') app.reopenLogs()
    else if (m.type === 'stats') {
      const s = stats(app, startedAt, applied)
      if (!m.process) send({ type: 'stats', id: m.id, stats: s })
      else void app.metrics.exportProcessMetrics().then((pm) => send({ type: 'stats', id: m.id, stats: { ...s, processMetrics: pm } }), () => send({ type: 'stats', id: m.id, stats: s }))
    }
    else if (m.type === 'stop') stop(m.acceptGraceMs)
  })
  process.on('disconnect', () => stop())
  process.on('SIGTERM', () => stop())
  // a terminal's Ctrl-C and SIGHUP reach the whole process group: the primary decides what they mean
  process.on('SIGINT', () => {})
  process.on('SIGHUP', () => {})
  // sent to the whole group (kill -USR1 -PGID): the primary tells every process; never the inspector
  process.on('SIGUSR1', () => {})

  await app.start()
  const port = msg.listen.handoff ? msg.listen.port : app.engine.address().port
  send({ type: 'listening', port })
}

function stats (app: App, startedAt: string, snapshot: number): ProcessStats {
  const hosts: Array<[string, number, number]> = app.pools.hosts.map((h: Host) => [h.id, h.requests, h.inflight])
  return {
    pid: process.pid,
    requests: app.metrics.requestsTotal(),
    inflight: app.core.inflight,
    connections: app.engine.connections,
    startedAt,
    snapshot,
    hosts,
    counters: app.metrics.exportCounters(app.core.inflight),
  }
}
