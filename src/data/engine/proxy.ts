/**
 * @module proxy/proxy
 * What every request of the engine (src/engine) shares whatever its route: the retry counters, the
 * requests in flight (for the drain), the idempotency gate, and the bookkeeping of a finished request
 * (metrics, access log). The balancer, retry policy and deadlines are its pool's (routing/route-pool).
 * Built once; holds no per-request state.
 */
import type { HostCounters } from '../upstream/host-counters.js'
import { ENDED, type AccessLog, type LoggedRequest } from '../observe/access-log.js'
import type { FinishedSpan, SpanSink, TraceFacts } from '../observe/trace.js'
import type { Host } from '../upstream/host.js'
import type { DeadlineEntry } from '../http/deadlines.js'
import type { IdempotencyGate } from '../idempotency/gate.js'
import { newRetryTally, type RetryTally, type TryOutcome } from '../upstream/retry-policy.js'

export interface ProxyOptions {
  /** the retry counters every pool's policy adds to (the metrics read one set) */
  tally?: RetryTally
  maxBodyBytes: number
  /** one line per request; null when log.access is off */
  accessLog: AccessLog | null
  /** told of every try and every finished request (counters, passive health) */
  observer?: ProxyObserver
  /** the gate of `idempotency.routes`; absent when none is configured */
  idempotency?: IdempotencyGate | null
  /** where sampled requests' spans go (tracing.otlp); null: none exported */
  spans?: SpanSink | null
}

/** What the bookkeeping of a finished request reads (the engine's exchange). */
export interface FinishedRequest extends DeadlineEntry, LoggedRequest, TraceFacts {
  /** the engine's coarse clock (ms since the epoch) */
  readonly clock: number
  readonly method: string
  readonly path: string
  readonly status: number
  readonly host: Host | undefined
  /** the route it matched (null: refused before one matched); its counters are bound at load */
  readonly route: { readonly metrics: HostCounters | null, readonly index: number } | null
  readonly attempts: number
  readonly startedAt: number
  /** answered from the idempotency record */
  readonly replayed: boolean
}

/** Hooks other modules attach to (metrics, outlier detection). Defaults are no-ops so the hot path never asks. */
export interface ProxyObserver {
  /** every try's outcome, per host */
  tryEnded (host: Host, outcome: TryOutcome): void
  /** every request, once, when it is over (those answered without an upstream included) */
  requestEnded (ex: FinishedRequest, durationMs: number): void
}

const noopObserver: ProxyObserver = { tryEnded () {}, requestEnded () {} }

export class ProxyCore {
  readonly retries: RetryTally
  /** limits.maxBodyBytes (a reload may change it) */
  maxBodyBytes: number
  inflight = 0
  readonly observer: ProxyObserver
  /** set when `idempotency.routes` is not empty: the one check ordinary requests pay */
  readonly idempotency: IdempotencyGate | null
  private readonly accessLog: AccessLog | null
  private readonly spans: SpanSink | null
  /** the log wants upstream times: the exchange measures them only then */
  readonly timesUpstream: boolean
  private idleWaiters: Array<() => void> = []

  constructor (o: ProxyOptions) {
    this.retries = o.tally ?? newRetryTally()
    this.maxBodyBytes = o.maxBodyBytes
    this.accessLog = o.accessLog
    this.observer = o.observer ?? noopObserver
    this.idempotency = o.idempotency ?? null
    this.spans = o.spans ?? null
    this.timesUpstream = o.accessLog?.timesUpstream ?? false
  }

  report (host: Host, outcome: TryOutcome): void {
    this.observer.tryEnded(host, outcome)
  }

  finish (ex: FinishedRequest): void {
    const ms = performance.now() - ex.startedAt
    this.observer.requestEnded(ex, ms)
    if (this.accessLog !== null) this.accessLog.request(ex, ex.clock, ms)
    if (this.spans !== null && ex.sampled) this.spans.add(spanOf(ex, ms))
    this.settled()
  }

  private settled (): void {
    if (--this.inflight === 0 && this.idleWaiters.length > 0) {
      for (const w of this.idleWaiters.splice(0)) w()
    }
  }

  /** Resolves once no request is in flight (used by graceful shutdown). */
  idle (): Promise<void> {
    if (this.inflight === 0) return Promise.resolve()
    return new Promise((resolve) => this.idleWaiters.push(resolve))
  }

  /** resolves once the access log's last lines are written */
  close (): Promise<void> {
    this.spans?.close()
    return this.accessLog?.flush() ?? Promise.resolve()
  }

  /** SIGUSR1: the access log's file is opened again (logrotate renamed it) */
  reopenLogs (): void {
    this.accessLog?.reopen()
  }
}

/** a sampled request's span, copied out of the exchange so the batch holds no exchange */
function spanOf (ex: FinishedRequest, ms: number): FinishedSpan {
  const endMs = performance.timeOrigin + performance.now()
  return {
    traceId: ex.traceId,
    parentSpanId: ex.parentSpanId,
    spanId: ex.spanId,
    sampled: true,
    method: ex.method,
    path: ex.path,
    hostHeader: ex.hostHeader,
    protocolVersion: ex.protocol === 'HTTP/2.0' ? '2' : ex.protocol.slice(5),
    clientAddress: ex.resolvedClient(),
    status: ex.clientStatus,
    upstream: ex.host?.id,
    requestId: ex.requestId,
    userAgent: ex.header('user-agent'),
    startMs: endMs - ms,
    endMs,
    ended: ENDED[ex.ended]!,
  }
}

/**
 * Absolute-form → origin-form. The authority must be the Host the request carries (RFC 9112 §3.2.2
 * makes it win over Host; refusing a mismatch keeps the upstream and the client agreeing on the host).
 */
export function toOriginForm (target: string, host: string): string | undefined {
  if (!/^https?:\/\//i.test(target)) return undefined
  try {
    const u = new URL(target)
    if (u.username !== '' || u.password !== '' || host === '') return undefined
    if (new URL(`${u.protocol}//${host}`).host !== u.host) return undefined
    return u.pathname + u.search
  } catch {
    return undefined
  }
}
