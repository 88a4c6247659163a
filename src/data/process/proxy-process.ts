/**
 * @module data/process/proxy-process
 * One proxy process: the data plane only (data/data-plane.ts), and nothing of the control plane. It accepts on the shared port, parses, picks and forwards
 * with its own upstream pools, routing by the primary's last snapshot; it never checks health,
 * ejects, supervises workers or serves the admin API. Try outcomes go to the primary in batches; its
 * counters only when the primary asks. It exits when told to stop (after draining), on SIGTERM, and
 * when the primary is gone (the IPC channel closed), so no proxy process outlives its primary.
 */
import { Socket } from 'node:net'
import { PrimaryTokens } from '../policy/primary-tokens.js'
import type { Host } from '../upstream/host.js'
import { createLogger } from '../../shared/log.js'
import type { FromProxy, ProcessStats, ToProxy } from '../../shared/process/protocol.js'
import type { Snapshot } from '../../shared/process/snapshot.js'
import { PoolSet } from '../upstream/pool-set.js'
import { createDataPlane, rereadCertificates, type DataPlane } from '../data-plane.js'
import { TryReporter } from './try-reporter.js'
import { processMetrics } from './process-metrics.js'

/** the prefix of the default metrics (control/metrics's PREFIX; the primary relabels them by pid) */
const METRICS_PREFIX = 'claylb_'

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
  const config = msg.config
  const logger = createLogger(config.log.level)
  // every try's outcome goes to the primary's outlier detector, in batches
  const reporter = new TryReporter((events) => send({ type: 'tries', events }))
  // `local` rate limits lease their tokens from the primary
  const tokens = new PrimaryTokens((m) => { if (!process.connected) return false; process.send!(m); return true })
  const pools = new PoolSet(config)
  const plane = createDataPlane(config, { logger, clusters: pools, passiveHealth: reporter, tlsCache: pools.tlsCache, localTokens: tokens.take, ticketKeys: Buffer.from(msg.ticketKeys, 'base64') })
  const startedAt = new Date().toISOString()
  let applied = 0
  const apply = (s: Snapshot): void => {
    if (s.version <= applied) return
    const removed = pools.apply(s)
    applied = s.version
    // a host gone from the snapshot finishes what it carries, then its sockets close
    for (const h of removed) void h.waitIdle(plane.config.shutdown.timeoutMs).then(() => h.close())
    send({ type: 'applied', version: applied })
  }
  apply(msg.snapshot)

  let stopping = false
  // SIGTERM and a primary gone wait the config's grace; the primary's stop names the grace it waits
  const stop = (acceptGraceMs?: number): void => {
    if (stopping) return
    stopping = true
    // the tries of the grace still feed passive health: the reporter closes once the drain is over
    plane.drain(acceptGraceMs ?? plane.config.shutdown.acceptGraceMs).then(() => { pools.close(); reporter.close(); process.exit(0) }, (err: unknown) => {
      logger.error({ err }, 'proxy process stop failed')
      process.exit(1)
    })
  }
  process.on('message', (m: ToProxy, handle?: unknown) => {
    if (m.type === 'connection') {
      if (handle instanceof Socket) plane.engine.adopt(handle)
    } else if (m.type === 'taken') tokens.answered(m)
    else if (m.type === 'snapshot') apply(m.snapshot)
    else if (m.type === 'config') {
      // one step: the pools the config names, their hosts, then the routes over them
      pools.configure(m.config)
      apply(m.snapshot)
      plane.applyConfig(m.config, rereadCertificates(m.config, logger))
    } else if (m.type === 'reopen-logs') plane.reopenLogs()
    else if (m.type === 'stats') {
      const s = stats(plane, startedAt, pools.hosts, applied)
      if (!m.process) send({ type: 'stats', id: m.id, stats: s })
      else void processMetrics(METRICS_PREFIX).then((pm) => send({ type: 'stats', id: m.id, stats: { ...s, processMetrics: pm } }), () => send({ type: 'stats', id: m.id, stats: s }))
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

  // a proxy process binds what the primary says (with reusePort: the port the first one got; with
  // handoff: nothing, the primary sends it each connection)
  await plane.listen(msg.listen)
  const port = msg.listen.handoff ? msg.listen.port : plane.engine.address().port
  send({ type: 'listening', port })
}

function stats (plane: DataPlane, startedAt: string, hosts: readonly Host[], snapshot: number): ProcessStats {
  return {
    pid: process.pid,
    requests: plane.counters.requestsTotal(),
    inflight: plane.core.inflight,
    connections: plane.engine.connections,
    startedAt,
    snapshot,
    hosts: hosts.map((h) => [h.key, h.requests, h.inflight]),
    counters: plane.counters.export(plane.core.inflight),
  }
}
