/**
 * @module cores/try-reporter
 * A proxy process's passive health evidence for the primary's outlier detector, in batches. Per
 * host and batch it carries every failed try, the ok that ends a failure streak, and one ok (so a
 * streak another process reported is reset by this one's successes); the run of oks in between
 * changes nothing for a consecutive-failure detector and is left out. The request path pushes two
 * references into an array; a timer sends the batch.
 */
import type { Host } from '../upstream/host.js'
import { OUTCOME_INDEX } from '../upstream/host-counters.js'
import type { TryOutcome } from '../proxy/retry-policy.js'

export class TryReporter {
  private events: Array<string | number> = []
  private epoch = 1
  private readonly timer: NodeJS.Timeout

  constructor (private readonly send: (events: Array<string | number>) => void, intervalMs = 20) {
    this.timer = setInterval(() => this.flush(), intervalMs)
    this.timer.unref()
  }

  tryEnded (host: Host, outcome: TryOutcome): void {
    if (outcome === 'local') return
    if (outcome === 'ok') {
      if (host.failures === 0 && host.reportEpoch === this.epoch) return
      host.failures = 0
    } else {
      host.failures++
    }
    host.reportEpoch = this.epoch
    this.events.push(host.id, OUTCOME_INDEX[outcome])
  }

  flush (): void {
    if (this.events.length === 0) return
    const events = this.events
    this.events = []
    this.epoch++
    this.send(events)
  }

  close (): void {
    clearInterval(this.timer)
    this.flush()
  }
}
