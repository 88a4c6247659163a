import t from 'tap'
import { startBackends } from '../helpers/backend.js'
import { startClaylb } from '../helpers/claylb.js'
import { req } from '../helpers/http.js'

t.test('30 sequential GETs over 3 backends: exactly 10 each', async (t) => {
  const backends = await startBackends(['a', 'b', 'c'])
  const lb = await startClaylb({ args: backends.flatMap((b) => ['--upstream', b.url]) })
  t.teardown(async () => { await lb.stop(); await Promise.all(backends.map((b) => b.close())) })
  const seen: Record<string, number> = {}
  for (let i = 0; i < 30; i++) {
    const r = await req(`${lb.url}/item/${i}`)
    t.equal(r.status, 200)
    seen[r.body] = (seen[r.body] ?? 0) + 1
  }
  t.same(seen, { a: 10, b: 10, c: 10 })
  t.same(backends.map((b) => b.count), [10, 10, 10], 'each backend counted 10 requests itself')
})

t.test('weights 2:1:1 give a 2:1:1 split', async (t) => {
  const backends = await startBackends(['a', 'b', 'c'])
  // the balancer's state is each proxy process's own (as each nginx worker's): the exact
  // interleaving holds per process, so this pins one
  const lb = await startClaylb({
    args: ['--processes', '1'],
    config: { upstreams: backends.map((b, i) => ({ url: b.url, weight: i === 0 ? 2 : 1 })) },
  })
  t.teardown(async () => { await lb.stop(); await Promise.all(backends.map((b) => b.close())) })
  const order: string[] = []
  for (let i = 0; i < 40; i++) order.push((await req(`${lb.url}/`)).body)
  const count = (n: string): number => order.filter((x) => x === n).length
  t.same([count('a'), count('b'), count('c')], [20, 10, 10])
  // smooth weighting interleaves: "a" never runs three in a row
  t.notOk(order.join('').includes('aaa'), `interleaved: ${order.slice(0, 8).join('')}…`)
})
