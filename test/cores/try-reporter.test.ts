/**
 * The proxy process's try reporter: failures and streak-ending successes leave at the next tick; a
 * batch of only successes (one per host) waits for the quiet period; runs of successes collapse.
 * Ticked by hand (no timer), so nothing here depends on how fast the machine is.
 */
import t from 'tap'
import { TryReporter } from '../../src/data/process/try-reporter.js'
import { OUTCOME_INDEX } from '../../src/data/upstream/host-counters.js'
import type { Host } from '../../src/data/upstream/host.js'

const host = (id: string): Host => ({ id, failures: 0, reportEpoch: 0 }) as unknown as Host

function reporter (quietTicks: number) {
  const sent: Array<Array<string | number>> = []
  const r = new TryReporter((events) => sent.push(events), 0, quietTicks)
  return { r, sent }
}

t.test('only successes: one ok per host, sent once the quiet period has passed', async (t) => {
  const { r, sent } = reporter(5)
  const a = host('a')
  const b = host('b')
  for (let i = 0; i < 100; i++) { r.tryEnded(a, 'ok'); r.tryEnded(b, 'ok') }
  for (let i = 0; i < 4; i++) r.tick()
  t.same(sent, [], 'nothing urgent: still waiting after 4 of 5 ticks')
  r.tick()
  t.same(sent, [['a', OUTCOME_INDEX.ok, 'b', OUTCOME_INDEX.ok]], 'the run of 100 oks per host is one ok each')
  for (let i = 0; i < 5; i++) r.tick()
  t.equal(sent.length, 1, 'no tries, no message')
})

t.test('a failure goes at the next tick, with the oks already queued', async (t) => {
  const { r, sent } = reporter(1000)
  const a = host('a')
  const b = host('b')
  r.tryEnded(b, 'ok')
  r.tryEnded(a, 'http-5xx')
  r.tryEnded(a, 'timeout')
  r.tick()
  t.same(sent, [['b', OUTCOME_INDEX.ok, 'a', OUTCOME_INDEX['http-5xx'], 'a', OUTCOME_INDEX.timeout]])
  t.equal(a.failures, 2, 'the local streak')
})

t.test('the ok that ends a streak is urgent too; the oks after it are not', async (t) => {
  const { r, sent } = reporter(1000)
  const a = host('a')
  r.tryEnded(a, 'reset')
  r.tick()
  r.tryEnded(a, 'ok')
  r.tick()
  t.same(sent[1], ['a', OUTCOME_INDEX.ok], 'the streak-ending ok left at the next tick')
  t.equal(a.failures, 0)
  r.tryEnded(a, 'ok')
  r.tryEnded(a, 'ok')
  r.tick()
  t.equal(sent.length, 2, 'a plain ok waits for the quiet period')
})

t.test("'local' (the client left, claylb's own error) is never reported", async (t) => {
  const { r, sent } = reporter(1)
  const a = host('a')
  r.tryEnded(a, 'local')
  r.tick()
  t.same(sent, [])
  t.equal(a.failures, 0)
})

t.test('close sends what is queued, urgent or not', async (t) => {
  const { r, sent } = reporter(1000)
  r.tryEnded(host('a'), 'ok')
  r.close()
  t.same(sent, [['a', OUTCOME_INDEX.ok]])
})
