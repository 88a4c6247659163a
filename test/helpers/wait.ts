/**
 * Waiting on the event itself, not on a guess at how long it takes: a condition polled until it holds,
 * with a generous hang guard (a busy machine is slow, never wrong), and a failure that says what was
 * awaited and what was last seen.
 */

/**
 * Resolves once `cond` holds. The poll interval only bounds how soon the event is noticed; it never
 * decides an order. `seen` describes the state on failure.
 */
export async function waitFor (cond: () => boolean | Promise<boolean>, what: string, o: { timeoutMs?: number, seen?: () => unknown } = {}): Promise<void> {
  const end = Date.now() + (o.timeoutMs ?? 60_000)
  for (;;) {
    if (await cond()) return
    if (Date.now() > end) {
      const seen = o.seen === undefined ? '' : `; last seen: ${JSON.stringify(o.seen())}`
      throw new Error(`timed out after ${o.timeoutMs ?? 60_000} ms waiting for ${what}${seen}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}
