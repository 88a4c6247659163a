/**
 * @module idempotency/clock
 * The time leases and retention run on in this process: the wall clock and its timers, unless a test
 * passes its own (one it advances, so a TTL is crossed without waiting it out). Only the memory store
 * and a claim's lease renewal read it; the Redis store's expiry runs on Redis's clock.
 */
export interface Clock {
  now (): number
  setInterval (fn: () => void, ms: number): ClockTimer
  clearInterval (timer: ClockTimer): void
}

/** what a clock's setInterval returns: unref'd by the caller (a lease renewal never keeps a process up) */
export interface ClockTimer { unref (): unknown }

export const systemClock: Clock = {
  now: Date.now,
  setInterval: (fn, ms) => setInterval(fn, ms),
  clearInterval: (timer) => clearInterval(timer as NodeJS.Timeout),
}
