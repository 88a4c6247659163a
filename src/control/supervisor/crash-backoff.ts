/**
 * @module workers/crash-backoff
 * PM2's exponential restart delay for one slot: the first restart waits `restartBackoffMs`, each
 * further unstable one x1.5 up to `restartBackoffMaxMs`; a worker that lived `stableAfterMs` resets
 * it. After `maxUnstableRestarts` unstable restarts in a row the slot is given up.
 */
export interface BackoffSettings {
  restartBackoffMs: number
  restartBackoffMaxMs: number
  stableAfterMs: number
  maxUnstableRestarts: number
}

export const BACKOFF_FACTOR = 1.5

export class CrashBackoff {
  /** restarts since the slot last had a stable worker */
  unstable = 0
  private delay: number

  constructor (private readonly s: BackoffSettings) {
    this.delay = s.restartBackoffMs
  }

  /** A worker of this slot ended after `livedMs`: the delay before its replacement, or undefined to give up. */
  next (livedMs: number): number | undefined {
    if (livedMs >= this.s.stableAfterMs) {
      this.unstable = 0
      this.delay = this.s.restartBackoffMs
    }
    if (++this.unstable > this.s.maxUnstableRestarts) return undefined
    const d = this.delay
    this.delay = Math.min(this.s.restartBackoffMaxMs, Math.round(d * BACKOFF_FACTOR))
    return d
  }
}
