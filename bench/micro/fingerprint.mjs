// Idempotency fingerprint of a 1 KB JSON body: method + path + canonical body (JSON compared by value,
// not by key order or whitespace), hashed with sha256.
// claylb's BodyFingerprint (update per chunk, digest with the whole JSON body: its own lossless
// canonicaliser, numbers by exact decimal value) beside the naive baseline (JSON.parse, recursive
// key-sorted stringify, sha256) and the floor (sha256 of the raw bytes).
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

let claylb = null
if (existsSync(dist('idempotency/fingerprint.js'))) {
  const { BodyFingerprint } = await import(dist('idempotency/fingerprint.js'))
  if (typeof BodyFingerprint === 'function') {
    claylb = () => { const f = new BodyFingerprint('POST', '/orders', 'application/json'); f.update(BODY); return f.digest(BODY) }
  } else process.stdout.write('dist/shared/idempotency/fingerprint.js has no BodyFingerprint: update bench/micro/fingerprint.mjs\n')
} else process.stdout.write('dist/shared/idempotency/fingerprint.js is missing: run `npm run build`\n')
process.stdout.write(`body: ${BODY.length} bytes of JSON\n`)

summary(() => {
  if (claylb) bench('claylb BodyFingerprint (canonical JSON, sha256)', () => do_not_optimize(claylb()))
  bench('naive: JSON.parse + sorted stringify + sha256', () => do_not_optimize(naiveFingerprint('POST', '/orders', BODY)))
  bench('floor: sha256 of the raw bytes (no canonical form)', () => do_not_optimize(createHash('sha256').update(BODY).digest('base64url')))
})
await run()
await reportAllocations([
  ...(claylb ? [['claylb BodyFingerprint', claylb, 1e4]] : []),
  ['naive canonical JSON + sha256', () => naiveFingerprint('POST', '/orders', BODY), 1e4],
])
