/**
 * @module proxy/deadlines
 * Whole-request deadlines without a timer per request: an intrusive list in start order (so oldest
 * first) swept by one interval. Insert and remove are O(1) and allocate nothing.
 */

export interface DeadlineEntry {
  deadlineAt: number
  prevDeadline: DeadlineEntry | null
  nextDeadline: DeadlineEntry | null
  onDeadline (): void
}

export class Deadlines {
  private head: DeadlineEntry | null = null
  private tail: DeadlineEntry | null = null
  private timer: NodeJS.Timeout | null = null
  size = 0

  /** all entries share one timeout, so appending keeps the list sorted by deadline */
  constructor (readonly timeoutMs: number, private readonly sweepMs = Math.min(250, Math.max(10, timeoutMs / 4))) {}

  add (e: DeadlineEntry, now: number): void {
    e.deadlineAt = now + this.timeoutMs
    e.nextDeadline = null
    e.prevDeadline = this.tail
    if (this.tail) this.tail.nextDeadline = e
    else this.head = e
    this.tail = e
    if (++this.size === 1 && this.timer === null) this.start()
  }

  remove (e: DeadlineEntry): void {
    if (e.prevDeadline === null && this.head !== e) return // not in the list
    if (e.prevDeadline) e.prevDeadline.nextDeadline = e.nextDeadline
    else this.head = e.nextDeadline
    if (e.nextDeadline) e.nextDeadline.prevDeadline = e.prevDeadline
    else this.tail = e.prevDeadline
    e.prevDeadline = e.nextDeadline = null
    this.size--
  }

  private start (): void {
    this.timer = setInterval(() => this.sweep(Date.now()), this.sweepMs)
    this.timer.unref()
  }

  sweep (now: number): void {
    while (this.head !== null && this.head.deadlineAt <= now) {
      const e = this.head
      this.remove(e)
      e.onDeadline()
    }
    if (this.size === 0 && this.timer !== null) {
      clearInterval(this.timer)
      this.timer = null
    }
  }

  close (): void {
    if (this.timer) clearInterval(this.timer)
    this.timer = null
  }
}
