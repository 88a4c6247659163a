/**
 * @module idempotency/setup
 * Builds the proxy's idempotency layer from `config.idempotency`, or nothing when no route is
 * configured (then the proxy never connects to Redis for it and pays one null check per request).
 */
import type { Cluster, Redis } from 'ioredis'
import type { Config } from '../../shared/config/schema.js'
import type { Logger } from '../../shared/log.js'
import type { IdempotencyObserver } from '../../shared/idempotency/core.js'
import { IdempotencyGate } from './gate.js'
import { IdempotencyCore, type IdempotencySettings } from '../../shared/idempotency/core.js'
import { IdempotencyDecider } from '../../shared/idempotency/decision.js'
import { RouteTable } from '../../shared/idempotency/routes.js'
import { defaultScope, ScopeSources } from '../../shared/idempotency/scope.js'
import { RedisStore, type RedisTiming } from '../../shared/idempotency/redis-store.js'

/** How long a duplicate waits for the original with `onConcurrent: wait` (at most the lease). */
export const MAX_WAIT_MS = 10_000

export function idempotencySettings (c: Config['idempotency']): IdempotencySettings {
  return {
    leaseMs: c.lockSeconds * 1000,
    ttlMs: c.ttlSeconds * 1000,
    maxResponseBytes: c.maxResponseBytes,
    waitMs: c.onConcurrent === 'wait' ? Math.min(MAX_WAIT_MS, c.lockSeconds * 1000) : 0,
    releaseStatuses: new Set(c.releaseStatuses),
  }
}

/** `idempotency.routes` compiled, with the section's `maxBodyBytes` as each route's default (also on reload). */
export function idempotencyRoutes (c: Config['idempotency']): RouteTable {
  return new RouteTable(c.routes, c.maxBodyBytes)
}

export function createIdempotencyGate (config: Config, client: Redis | Cluster, logger: Logger, observer?: IdempotencyObserver, timing?: RedisTiming): IdempotencyGate {
  const c = config.idempotency
  const store = new RedisStore(client, {
    keyPrefix: config.redis.keyPrefix,
    notify: c.onConcurrent === 'wait',
    waitReplicas: c.waitReplicas,
    waitTimeoutMs: c.waitTimeoutMs,
    ...(timing === undefined ? {} : { timing }),
    onUnreplicated: (acked) => logger.warn({ acked, wanted: c.waitReplicas }, 'idempotency: a stored answer reached fewer replicas than idempotency.waitReplicas; a failover now could lose it'),
  })
  return new IdempotencyGate({
    routes: idempotencyRoutes(c),
    decider: new IdempotencyDecider(new IdempotencyCore(store, idempotencySettings(c), observer), new ScopeSources(c.scope ?? defaultScope(config.session.cookie))),
    logger,
  })
}
