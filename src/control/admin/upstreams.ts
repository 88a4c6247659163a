/**
 * @module admin/upstreams
 * Runtime controls in HAProxy's vocabulary: `drain` stops new requests to an upstream (in-flight ones
 * finish), `ready` takes it back. Health and ejection stay the checkers' business.
 */
import type { IncomingMessage } from 'node:http'
import type { Logger } from '../../shared/log.js'
import type { Host } from '../../data/upstream/host.js'
import { sendJson, type AdminServer } from './admin.js'
import type { HostDrainWatch } from '../supervisor/supervisor.js'

/** finds the hosts with an id: one per pool that lists the upstream */
export interface HostFinder { hostsWithId (id: string): Host[] }

/**
 * The same upstream listed in two pools is two hosts with one id: an admin call acts on it in every
 * pool, unless `?pool=NAME` picks one (a query parameter, since a discovered host's id holds a `/`).
 * `watch`: with proxy processes the in-flight count is theirs, and the answer waits until every one
 * routes by the host's new state, so it means it holds (control/process/primary.ts)
 */
export function registerUpstreamRoutes (admin: AdminServer, cluster: HostFinder, maxWaitMs: number, logger: Logger, watch: HostDrainWatch): void {
  const find = (req: IncomingMessage, id: string): Host[] => {
    const pool = query(req).get('pool')
    const hosts = cluster.hostsWithId(id)
    return pool === null ? hosts : hosts.filter((h) => h.pool === pool)
  }
  const notFound = (req: IncomingMessage, id: string): string => {
    const pool = query(req).get('pool')
    return pool === null ? `no upstream with id ${id}` : `no upstream with id ${id} in pool ${pool}`
  }
  /** one host's answer, as before pools; `pools` names every pool it acted in */
  const answer = (hosts: Host[]): Record<string, unknown> => ({ ...hosts[0]!.toJSON(), pool: hosts[0]!.pool, pools: hosts.map((h) => h.pool) })
  const setDraining = async (hosts: Host[], draining: boolean): Promise<void> => {
    for (const h of hosts) h.setDraining(draining)
    await Promise.all(hosts.map((h) => watch.drained(h)))
  }
  // POST /upstreams/:id/drain[?wait=1][&pool=NAME]: with wait, answers once the upstream has no request in flight
  admin.route('POST', '/upstreams/:id/drain', async (req, res, { id }) => {
    const hosts = find(req, id!)
    if (hosts.length === 0) return sendJson(res, 404, { error: 'not found', detail: notFound(req, id!) })
    await setDraining(hosts, true)
    logger.info({ upstream: id, pools: hosts.map((h) => h.pool), inflight: hosts.reduce((n, h) => n + h.inflight, 0) }, 'upstream draining (admin)')
    const idle = query(req).get('wait') === '1'
      ? (await Promise.all(hosts.map((h) => watch.hostIdle(h, maxWaitMs)))).every(Boolean)
      : hosts.every((h) => h.inflight === 0)
    sendJson(res, 200, { ...answer(hosts), idle })
  })
  admin.route('POST', '/upstreams/:id/ready', async (req, res, { id }) => {
    const hosts = find(req, id!)
    if (hosts.length === 0) return sendJson(res, 404, { error: 'not found', detail: notFound(req, id!) })
    await setDraining(hosts, false)
    logger.info({ upstream: id, pools: hosts.map((h) => h.pool) }, 'upstream ready (admin)')
    sendJson(res, 200, answer(hosts))
  })
}

function query (req: IncomingMessage): URLSearchParams {
  return new URLSearchParams((req.url ?? '').split('?')[1] ?? '')
}
