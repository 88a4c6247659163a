// Idempotency fingerprint of a 1 KB JSON body: method + path + canonical body (JSON compared by value,
// not by key order or whitespace), hashed with sha256.
// PENDING: src/idempotency is being written on branch `idempotency`. Until dist/idempotency/ exists on
// main this file benchmarks the naive baseline alone (JSON.parse, recursive key-sorted stringify,
// sha256); when it lands, add its fingerprint function beside the baseline below.
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { bench, dist, do_not_optimize, reportAllocations, run, summary } from './harness.mjs'

const BODY = Buffer.from(JSON.stringify({
  customer: 'c-42', currency: 'EUR', shipping: { street: '1 Main St', city: 'Springfield', zip: '12345', country: 'US' },
  items: Array.from({ length: 8 }, (_, i) => ({ sku: `SKU-${1000 + i}`, qty: (i % 3) + 1, price: 19.99 + i, tags: ['a', 'b'] })),
  note: 'x'.repeat(420),
}))

function canonical (v) {
  if (v === null || typeof v !== 'object') return JSON.stringify(v)
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`
  return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`).join(',')}}`
}

function naiveFingerprint (method, path, body) {
  return createHash('sha256').update(method).update('\n').update(path).update('\n').update(canonical(JSON.parse(body.toString('utf8')))).digest('base64url')
}

const pending = !existsSync(dist('idempotency'))
if (pending) process.stdout.write('PENDING: dist/idempotency/ is not on main yet; naive baseline only\n')
else process.stdout.write('dist/idempotency/ exists: wire its fingerprint function into bench/micro/fingerprint.mjs\n')
process.stdout.write(`body: ${BODY.length} bytes of JSON\n`)

summary(() => {
  bench('naive: JSON.parse + sorted stringify + sha256', () => do_not_optimize(naiveFingerprint('POST', '/orders', BODY)))
  bench('floor: sha256 of the raw bytes (no canonical form)', () => do_not_optimize(createHash('sha256').update(BODY).digest('base64url')))
})
await run()
await reportAllocations([
  ['naive canonical JSON + sha256', () => naiveFingerprint('POST', '/orders', BODY), 1e4],
])
