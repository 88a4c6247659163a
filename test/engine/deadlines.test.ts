/**
 * Deadlines: the intrusive list swept by one interval, driven by hand (sweep(now)) with fake entries.
 */
import t from 'tap'
import { Deadlines, type DeadlineEntry } from '../../src/data/http/deadlines.js'

function entry (name: string, fired: string[]): DeadlineEntry {
  return { deadlineAt: 0, prevDeadline: null, nextDeadline: null, onDeadline () { fired.push(name) } }
}

t.test('entries fire in start order once their deadline passed, and only then', async (t) => {
  const d = new Deadlines(100)
  t.teardown(() => d.close())
  const fired: string[] = []
  const a = entry('a', fired)
  const b = entry('b', fired)
  const c = entry('c', fired)
  d.add(a, 1000)
  d.add(b, 1010)
  d.add(c, 1020)
  t.equal(d.size, 3)
  d.sweep(1099)
  t.same(fired, [], 'nothing before its time')
  d.sweep(1100)
  t.same(fired, ['a'], 'exactly at its deadline')
  d.sweep(1500)
  t.same(fired, ['a', 'b', 'c'])
  t.equal(d.size, 0)
})

t.test('removal from the middle, the ends, twice, or of an entry never added is safe', async (t) => {
  const d = new Deadlines(100)
  t.teardown(() => d.close())
  const fired: string[] = []
  const list = ['a', 'b', 'c', 'd'].map((n) => entry(n, fired))
  list.forEach((e, i) => d.add(e, i))
  d.remove(list[1]!)
  d.remove(list[1]!)
  d.remove(list[0]!)
  d.remove(list[3]!)
  d.remove(entry('never', fired))
  t.equal(d.size, 1)
  d.sweep(10_000)
  t.same(fired, ['c'])
  // an entry can be added again after it fired or was removed
  d.add(list[0]!, 20_000)
  d.sweep(20_100)
  t.same(fired, ['c', 'a'])
})

t.test('an entry removed by another entry\'s onDeadline does not fire', async (t) => {
  const d = new Deadlines(10)
  t.teardown(() => d.close())
  const fired: string[] = []
  const b = entry('b', fired)
  const a: DeadlineEntry = { deadlineAt: 0, prevDeadline: null, nextDeadline: null, onDeadline () { fired.push('a'); d.remove(b) } }
  d.add(a, 0)
  d.add(b, 0)
  d.sweep(100)
  t.same(fired, ['a'])
  t.equal(d.size, 0)
})

t.test('the interval runs only while entries wait', async (t) => {
  const d = new Deadlines(20, 10)
  t.teardown(() => d.close())
  const fired: string[] = []
  d.add(entry('x', fired), Date.now())
  const until = Date.now() + 5000
  while (fired.length === 0 && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 10))
  t.same(fired, ['x'], 'the sweep fired it by itself')
  t.equal((d as unknown as { timer: unknown }).timer, null, 'and stopped once the list was empty')
})
