/**
 * @module admin/upstreams
 * Runtime controls in HAProxy's vocabulary: `drain` stops new requests to an upstream (in-flight ones
 * finish), `ready` takes it back. Health and ejection stay the checkers' business.
 */
import type { IncomingMessage } from 'node:http'
import type { Logger } from '../../shared/log.js'
import type { Host } from '../../data/upstream/host.js'
import { sendJson, type AdminServer } from './admin.js'

/** finds a host by id, in any pool */
export interface HostFinder { host (id: string): Host | undefined }

export function registerUpstreamRoutes (admin: AdminServer, cluster: HostFinder, maxWaitMs: number, logger: Logger,
  /** with proxy processes the in-flight count is theirs (cores/primary.ts) */
  waitIdle: (host: Host, ms: number) => Promise<boolean> = (h, ms) => h.waitIdle(ms),
  /** resolves once every proxy process routes by the host's new state: the answer means it holds */
  applied: (host: Host) => Promise<void> = async () => {}): void {
  // POST /upstreams/:id/drain[?wait=1]: with wait, answers once the upstream has no request in flight
  admin.route('POST', '/upstreams/:id/drain', async (req, res, { id }) => {
    const host = cluster.host(id!)
    if (host === undefined) return sendJson(res, 404, { error: 'not found', detail: `no upstream with id ${id}` })
    host.setDraining(true)
    await applied(host)
    logger.info({ upstream: host.id, inflight: host.inflight }, 'upstream draining (admin)')
    const idle = wantsWait(req) ? await waitIdle(host, maxWaitMs) : host.inflight === 0
    sendJson(res, 200, { ...host.toJSON(), idle })
  })
  admin.route('POST', '/upstreams/:id/ready', async (_req, res, { id }) => {
    const host = cluster.host(id!)
    if (host === undefined) return sendJson(res, 404, { error: 'not found', detail: `no upstream with id ${id}` })
    host.setDraining(false)
    await applied(host)
    logger.info({ upstream: host.id }, 'upstream ready (admin)')
    sendJson(res, 200, host.toJSON())
  })
}

function wantsWait (req: IncomingMessage): boolean {
  const q = (req.url ?? '').split('?')[1]
  return q !== undefined && new URLSearchParams(q).get('wait') === '1'
}
