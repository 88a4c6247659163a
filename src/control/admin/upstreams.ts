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

/** finds a host by id, in any pool */
export interface HostFinder { host (id: string): Host | undefined }

/**
 * `watch`: with proxy processes the in-flight count is theirs, and the answer waits until every one
 * routes by the host's new state, so it means it holds (control/process/primary.ts)
 */
export function registerUpstreamRoutes (admin: AdminServer, cluster: HostFinder, maxWaitMs: number, logger: Logger, watch: HostDrainWatch): void {
  // POST /upstreams/:id/drain[?wait=1]: with wait, answers once the upstream has no request in flight
  admin.route('POST', '/upstreams/:id/drain', async (req, res, { id }) => {
    const host = cluster.host(id!)
    if (host === undefined) return sendJson(res, 404, { error: 'not found', detail: `no upstream with id ${id}` })
    host.setDraining(true)
    await watch.drained(host)
    logger.info({ upstream: host.id, inflight: host.inflight }, 'upstream draining (admin)')
    const idle = wantsWait(req) ? await watch.hostIdle(host, maxWaitMs) : host.inflight === 0
    sendJson(res, 200, { ...host.toJSON(), idle })
  })
  admin.route('POST', '/upstreams/:id/ready', async (_req, res, { id }) => {
    const host = cluster.host(id!)
    if (host === undefined) return sendJson(res, 404, { error: 'not found', detail: `no upstream with id ${id}` })
    host.setDraining(false)
    await watch.drained(host)
    logger.info({ upstream: host.id }, 'upstream ready (admin)')
    sendJson(res, 200, host.toJSON())
  })
}

function wantsWait (req: IncomingMessage): boolean {
  const q = (req.url ?? '').split('?')[1]
  return q !== undefined && new URLSearchParams(q).get('wait') === '1'
}
