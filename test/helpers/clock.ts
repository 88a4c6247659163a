/**
 * A clock a test advances (src/idempotency/clock.ts): a lease or a TTL is crossed by moving time, not
 * by sleeping through it, so a busy machine cannot make a lease end early (a starved renewal timer) or
 * late. Interval timers due on the way fire in time order, each at its own instant, and what they start
 * (a renewal's round trip to the store) settles before time moves on.
 */
import type { Clock, ClockTimer } from '../../src/shared/idempotency/clock.js'

interface Timer extends ClockTimer { at: number, every: number, fn: () => void }

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

export class ManualClock implements Clock {
  private t: number
  private readonly timers = new Set<Timer>()

  constructor (start = Date.now()) { this.t = start }

  now = (): number => this.t

  setInterval (fn: () => void, ms: number): ClockTimer {
    const timer: Timer = { at: this.t + ms, every: ms, fn, unref: () => timer }
    this.timers.add(timer)
    return timer
  }

  clearInterval (timer: ClockTimer): void { this.timers.delete(timer as Timer) }

  /** moves time on by `ms`, firing every timer due on the way at its instant */
  async advance (ms: number): Promise<void> {
    const end = this.t + ms
    for (;;) {
      let next: Timer | undefined
      for (const timer of this.timers) if (timer.at <= end && (next === undefined || timer.at < next.at)) next = timer
      if (next === undefined) break
      this.t = next.at
      next.at += next.every
      next.fn()
      await settle()
    }
    this.t = end
    await settle()
  }
}
