/**
 * @module cores/try-reporter
 * A proxy process's passive health evidence for the primary's outlier detector, in batches. Per
 * host and batch it carries every failed try, the ok that ends a failure streak, and one ok (so a
 * streak another process reported is reset by this one's successes); the run of oks in between
 * changes nothing for a consecutive-failure detector and is left out. The request path pushes two
 * references into an array; a timer sends the batch.
 *
 * A batch with a failure or a streak-ending ok goes at the next tick (`tickMs`, 20 ms): that is what
 * ejects and un-counts. A batch of only the one-ok-per-host waits up to `quietTicks` ticks (240 ms):
 * with every try succeeding there is nothing for the detector to decide, and sending it 50 times a
 * second cost the primary 5–6 µs per proxied request at 5,700 req/s (its IPC parse and GC; 2.3–2.7 µs
 * after, half of it the primary's idle baseline) for nothing.
 */
import type { Host } from '../upstream/host.js'
import { OUTCOME_INDEX } from '../upstream/host-counters.js'
import type { TryOutcome } from '../upstream/retry-policy.js'

export class TryReporter {
  private events: Array<string | number> = []
  private epoch = 1
  /** the batch holds a failure or a streak-ending ok: send at the next tick */
  private urgent = false
  private ticksSinceFlush = 0
  private readonly timer: NodeJS.Timeout | null

  /**
   * `tickMs`: how often the batch is looked at, so how long a failure waits at most (0: no timer, the
   * caller ticks); `quietTicks`: how many ticks a batch of only successes may wait
   */
  constructor (private readonly send: (events: Array<string | number>) => void, tickMs = 20, private readonly quietTicks = 12) {
    this.timer = tickMs > 0 ? setInterval(() => this.tick(), tickMs) : null
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

  /** the timer's: send the batch if it is urgent or has waited `quietTicks` */
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
