/**
 * @module cores/try-reporter
 * A proxy process's passive health evidence for the primary's outlier detector, in batches. Per
 * host and batch it carries every failed try, the ok that ends a failure streak, and one ok (so a
 * streak another process reported is reset by this one's successes); the run of oks in between
 * changes nothing for a consecutive-failure detector and is left out. The request path pushes two
 * references into an array; a timer sends the batch.
 *
 * A batch with a failure or a streak-ending ok goes at the next tick (`tickMs`, 20 ms): that is what
 * ejects and un-counts. A batch of only the one-ok-per-host leaves at most every `quietMs` (250 ms):
 * with every try succeeding there is nothing for the detector to decide, and sending it 50 times a
 * second cost the primary 5–6 µs per proxied request at 5,700 req/s (its IPC parse and GC; 2.3–2.7 µs
 * after, half of it the primary's idle baseline) for nothing.
 */
import type { Host } from '../upstream/host.js'
import { OUTCOME_INDEX } from '../upstream/host-counters.js'
import type { TryOutcome } from '../proxy/retry-policy.js'

export interface TryReporterTiming {
  /** how often the batch is looked at; a failure waits at most this long (0: no timer, the caller ticks) */
  tickMs: number
  /** how long a batch of only successes may wait */
  quietMs: number
}

export class TryReporter {
  private events: Array<string | number> = []
  private epoch = 1
  /** the batch holds a failure or a streak-ending ok: send at the next tick */
  private urgent = false
  private ticksSinceFlush = 0
  private readonly quietTicks: number
  private readonly timer: NodeJS.Timeout | null

  constructor (private readonly send: (events: Array<string | number>) => void, timing: TryReporterTiming = { tickMs: 20, quietMs: 250 }) {
    this.quietTicks = timing.tickMs > 0 ? Math.max(1, Math.round(timing.quietMs / timing.tickMs)) : Math.max(1, timing.quietMs)
    this.timer = timing.tickMs > 0 ? setInterval(() => this.tick(), timing.tickMs) : null
    this.timer?.unref()
  }

  tryEnded (host: Host, outcome: TryOutcome): void {
    if (outcome === 'local') return
    if (outcome === 'ok') {
      if (host.failures === 0) {
        if (host.reportEpoch === this.epoch) return
      } else {
        host.failures = 0
        this.urgent = true
      }
    } else {
      host.failures++
      this.urgent = true
    }
    host.reportEpoch = this.epoch
    this.events.push(host.id, OUTCOME_INDEX[outcome])
  }

  /** the timer's: send the batch if it is urgent or has waited `quietMs` */
  tick (): void {
    if (this.urgent || ++this.ticksSinceFlush >= this.quietTicks) this.flush()
  }

  flush (): void {
    this.ticksSinceFlush = 0
    this.urgent = false
    if (this.events.length === 0) return
    const events = this.events
    this.events = []
    this.epoch++
    this.send(events)
  }

  close (): void {
    if (this.timer !== null) clearInterval(this.timer)
    this.flush()
  }
}
