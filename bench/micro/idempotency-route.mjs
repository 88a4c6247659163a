// The one check every request pays when idempotency.routes is set (engine/exchange.ts `activate`):
// RouteTable.match (dist/shared/idempotency/routes.js). A method no route names must cost a Map miss and
// allocate nothing; a keyed method on another path normalises the path (allocates: that request is
// on a keyed method, not the common GET); the keyed route itself, for scale.
import { bench, do_not_optimize, reportAllocations, requireDist, run, summary } from './harness.mjs'

const { RouteTable } = await requireDist('idempotency/routes.js')

const table = new RouteTable([{ match: 'POST /orders', required: true }, { match: 'PUT /payments' }])

summary(() => {
  bench('GET /products/17?x=1 (no route names GET)', () => do_not_optimize(table.match('GET', '/products/17?x=1')))
  bench('POST /cart (keyed method, another path)', () => do_not_optimize(table.match('POST', '/cart')))
  bench('POST /orders/17 (the keyed route)', () => do_not_optimize(table.match('POST', '/orders/17')))
})
await run()
await reportAllocations([
  ['route check, GET (no route)', () => table.match('GET', '/products/17?x=1'), 1e7],
  ['route check, POST another path', () => table.match('POST', '/cart'), 1e6],
  ['route check, POST keyed route', () => table.match('POST', '/orders/17'), 1e6],
])
