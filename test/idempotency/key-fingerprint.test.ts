/**
 * Keys, and the fingerprint as properties (fast-check): equal meaning gives one fingerprint (JSON
 * member order, whitespace, number spelling; content-type case, quoting and spacing; escapes of
 * unreserved characters in the path); a different method, path, query, content type or JSON value
 * gives another. The proxy's gate and the middleware share this code: the gate and the middleware's
 * raw-body path use BodyFingerprint, the middleware's parsed-body path fingerprintValue, and both
 * must agree; a large body (canonicalised on the worker thread) must agree with the inline path.
 */
import t from 'tap'
import fc from 'fast-check'
import { parseIdempotencyKey } from '../../src/shared/idempotency/key.js'
import { BodyFingerprint, fingerprintValue } from '../../src/shared/idempotency/fingerprint.js'
import { normaliseContentType } from '../../src/shared/idempotency/content-type.js'
import { INLINE_MAX_BYTES } from '../../src/shared/idempotency/canonical-offload.js'
import { fingerprintTarget } from '../../src/shared/idempotency/route-path.js'

t.test('keys: sf-string and bare forms accepted', async (t) => {
  t.same(parseIdempotencyKey(['Idempotency-Key', '"8e03978e-40d5-43e8-bc93-6894a57f9324"']), { kind: 'key', key: '8e03978e-40d5-43e8-bc93-6894a57f9324' })
  t.same(parseIdempotencyKey(['idempotency-key', 'abc']), { kind: 'key', key: 'abc' })
  t.same(parseIdempotencyKey(['idempotency-key', 'a'.repeat(255)]), { kind: 'key', key: 'a'.repeat(255) })
  t.same(parseIdempotencyKey(['idempotency-key', 'ord_1:/+=.~-_']), { kind: 'key', key: 'ord_1:/+=.~-_' })
  t.same(parseIdempotencyKey(['content-type', 'x']), { kind: 'none' })
})

t.test('keys: everything else is invalid', async (t) => {
  const bad = ['', '""', 'a'.repeat(256), `"${'a'.repeat(256)}"`, 'a,b', 'a b', '{tag}', 'x{tag}', '*', 'a*', '"a\\"b"', 'é', 'a\tb', '"abc', 'a?', '[a]', 'a\r\nb']
  for (const v of bad) t.equal(parseIdempotencyKey(['Idempotency-Key', v]).kind, 'invalid', JSON.stringify(v))
  t.equal(parseIdempotencyKey(['Idempotency-Key', 'a', 'idempotency-key', 'a']).kind, 'invalid', 'two headers')
})

/** The fingerprint as the gate computes it: the path through fingerprintTarget, the body in chunks. */
async function fp (method: string, path: string, ct: string | undefined, body: string | Buffer, split = 1): Promise<string> {
  const f = new BodyFingerprint(method, fingerprintTarget(path), ct)
  const b = Buffer.isBuffer(body) ? body : Buffer.from(body)
  const step = Math.max(1, Math.ceil(b.length / split))
  for (let i = 0; i < b.length; i += step) f.update(b.subarray(i, i + step))
  return await f.digest(b)
}

// ---- generators ----

/** JSON values without -0 (JSON has no such value in text: `-0` and `0` are one number) */
const json = fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.parse(JSON.stringify(v)) as unknown)

const document = json.filter((v) => v !== null && typeof v === 'object')

/** other spellings of one JSON number text, all the same exact value */
function numberSpellings (n: string): string[] {
  if (/[eE]/.test(n)) return [n, n.toUpperCase(), n.replace(/e(?=\d)/i, 'e+')]
  if (n.includes('.')) return [n, `${n}0`, `${n}e0`, `${n}00E+0`]
  if (n === '0' || n === '-0') return [n, '0.0', '0e5', '-0']
  return [n, `${n}.0`, `${n}e0`, `${n}0e-1`, `${n}.000E+0`]
}

/** `v` written with its members shuffled, whitespace sprinkled and numbers respelled, driven by `pick` */
function respell (v: unknown, pick: () => number): string {
  const ws = (): string => [' ', '', '\n', '\t', '  ', ''][Math.floor(pick() * 6)]!
  if (Array.isArray(v)) return `[${ws()}${v.map((x) => ws() + respell(x, pick) + ws()).join(',')}${ws()}]`
  if (v !== null && typeof v === 'object') {
    const keys = Object.keys(v).sort(() => pick() - 0.5)
    return `{${ws()}${keys.map((k) => `${ws()}${JSON.stringify(k)}${ws()}:${ws()}${respell((v as Record<string, unknown>)[k], pick)}`).join(',')}${ws()}}`
  }
  if (typeof v === 'number') {
    const s = numberSpellings(JSON.stringify(v))
    return s[Math.floor(pick() * s.length)]!
  }
  return JSON.stringify(v)
}

const seeded = fc.integer().map((seed) => {
  let a = seed
  return () => { a = (a + 0x6d2b79f5) | 0; let x = Math.imul(a ^ (a >>> 15), 1 | a); x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x; return ((x ^ (x >>> 14)) >>> 0) / 4294967296 }
})

const METHODS = ['POST', 'PUT', 'PATCH', 'DELETE']
const method = fc.constantFrom(...METHODS)
const segment = fc.stringMatching(/^[A-Za-z0-9_.~-]{1,8}$/)
const path = fc.array(segment, { minLength: 1, maxLength: 4 }).map((s) => `/${s.join('/')}`)
const query = fc.option(fc.stringMatching(/^[a-z]{1,3}=[A-Za-z0-9]{0,4}$/), { nil: undefined })
const target = fc.tuple(path, query).map(([p, q]) => q === undefined ? p : `${p}?${q}`)
const mediaType = fc.constantFrom('application/json', 'application/vnd.api+json', 'text/plain', 'application/x-www-form-urlencoded', 'application/octet-stream', 'text/csv')
const jsonType = fc.constantFrom('application/json', 'application/merge-patch+json')
const charset = fc.option(fc.constantFrom('utf-8', 'iso-8859-1', 'us-ascii'), { nil: undefined })

/** another spelling of the same content type: case, spacing, a quoted charset */
function respellType (mt: string, cs: string | undefined, pick: () => number): string {
  const cased = (s: string): string => [...s].map((c) => (pick() < 0.5 ? c.toUpperCase() : c.toLowerCase())).join('')
  if (cs === undefined) return cased(mt)
  const value = pick() < 0.5 ? cased(cs) : `"${cased(cs)}"`
  return `${cased(mt)}${pick() < 0.5 ? ' ' : ''};${pick() < 0.5 ? ' ' : ''}${cased('charset')}=${value}`
}
const typeOf = (mt: string, cs: string | undefined): string => (cs === undefined ? mt : `${mt}; charset=${cs}`)

/** `p` with some unreserved characters written as escapes (either hex case) */
function escapeSome (p: string, pick: () => number): string {
  return [...p].map((c) => (c !== '/' && pick() < 0.3 ? `%${c.charCodeAt(0).toString(16)[pick() < 0.5 ? 'toUpperCase' : 'toLowerCase']()}` : c)).join('')
}

const RUNS = { numRuns: 300 }

t.test('equal meaning ⇒ equal fingerprint', async (t) => {
  await fc.assert(fc.asyncProperty(method, target, jsonType, charset, json, seeded, async (m, tg, mt, cs, v, pick) => {
    const a = await fp(m, tg, typeOf(mt, cs), JSON.stringify(v))
    const [p, q] = tg.split('?')
    const b = await fp(m, escapeSome(p!, pick) + (q === undefined ? '' : `?${q}`), respellType(mt, cs, pick), respell(v, pick), 1 + Math.floor(pick() * 4))
    return a === b
  }), RUNS)
  t.pass('JSON member order, whitespace, number spelling; content-type case, spacing and quoting; unreserved escapes')
})

t.test('the gate (bytes), the middleware (parsed value) and the worker thread (large bodies) agree', async (t) => {
  // a parsed body is an object or an array (express.json's strict mode; a string or null there is
  // read as bytes or as no body, which is what a text parser or an empty body gives)
  await fc.assert(fc.asyncProperty(method, target, jsonType, document, async (m, tg, mt, v) => {
    return fingerprintValue(m, fingerprintTarget(tg), mt, v) === await fp(m, tg, mt, JSON.stringify(v))
  }), RUNS)
  await fc.assert(fc.asyncProperty(method, target, json, seeded, async (m, tg, v, pick) => {
    // padded past the inline bound: canonicalised on the worker, compared with the inline result
    const big = { v, pad: Array.from({ length: INLINE_MAX_BYTES / 4 }, (_, i) => i) }
    const text = JSON.stringify(big)
    if (text.length <= INLINE_MAX_BYTES) return false
    return fingerprintValue(m, fingerprintTarget(tg), 'application/json', big) === await fp(m, tg, 'application/json', respell(big, pick))
  }), { numRuns: 15 })
  t.pass('one fingerprint, whichever way it was computed')
})

t.test('a different method, path, query, content type or JSON value ⇒ a different fingerprint', async (t) => {
  const body = '{"amount":10}'
  await fc.assert(fc.asyncProperty(method, method, target, async (m1, m2, tg) => {
    fc.pre(m1 !== m2)
    return await fp(m1, tg, 'application/json', body) !== await fp(m2, tg, 'application/json', body)
  }), RUNS)
  await fc.assert(fc.asyncProperty(target, target, async (a, b) => {
    fc.pre(fingerprintTarget(a) !== fingerprintTarget(b))
    return await fp('POST', a, 'application/json', body) !== await fp('POST', b, 'application/json', body)
  }), RUNS)
  await fc.assert(fc.asyncProperty(path, async (p) => {
    // case is never folded: /orders/ch_AbC and /orders/ch_abc may be two resources
    fc.pre(p.toLowerCase() !== p)
    return await fp('POST', p, 'application/json', body) !== await fp('POST', p.toLowerCase(), 'application/json', body)
  }), RUNS)
  await fc.assert(fc.asyncProperty(mediaType, charset, mediaType, charset, fc.string(), async (t1, c1, t2, c2, text) => {
    fc.pre(normaliseContentType(typeOf(t1, c1)) !== normaliseContentType(typeOf(t2, c2)))
    return await fp('POST', '/u', typeOf(t1, c1), text) !== await fp('POST', '/u', typeOf(t2, c2), text)
  }), RUNS)
  await fc.assert(fc.asyncProperty(jsonType, json, json, async (mt, a, b) => {
    fc.pre(!sameJson(a, b))
    return await fp('POST', '/orders', mt, JSON.stringify(a)) !== await fp('POST', '/orders', mt, JSON.stringify(b))
  }), RUNS)
  t.pass('every part of the request counts')
})

/** structural equality of two parsed JSON values (member order ignored) */
function sameJson (a: unknown, b: unknown): boolean {
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((x, i) => sameJson(x, b[i]))
  if (a !== null && typeof a === 'object') {
    if (b === null || typeof b !== 'object' || Array.isArray(b)) return false
    const ka = Object.keys(a)
    const kb = Object.keys(b)
    return ka.length === kb.length && ka.every((k) => Object.hasOwn(b, k) && sameJson((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]))
  }
  return a === b
}

t.test('examples: issue 24 cases 3 and 7', async (t) => {
  const b = '{"amount":10}'
  t.not(await fp('POST', '/orders/ch_AbC/refund', 'application/json', b), await fp('POST', '/orders/ch_abc/refund', 'application/json', b), 'case 3: resource ids keep their case')
  t.equal(await fp('POST', '/orders/%63h_AbC', 'application/json', b), await fp('POST', '/orders/ch_AbC', 'application/json', b), 'an escaped unreserved character is that character')
  t.not(await fp('POST', '/orders/a%2fb', 'application/json', b), await fp('POST', '/orders/a/b', 'application/json', b), 'a reserved escape is not its character')
  t.not(await fp('POST', '/orders/./x', 'application/json', b), await fp('POST', '/orders/x', 'application/json', b), 'dot segments as sent')
  const form = 'amount=10&to=x'
  t.not(await fp('POST', '/u', 'application/x-www-form-urlencoded', form), await fp('POST', '/u', 'text/plain', form), 'case 7: a form and text/plain')
  t.not(await fp('POST', '/u', undefined, form), await fp('POST', '/u', 'text/plain', form), 'no content type is one more')
  t.equal(await fp('POST', '/u', 'Text/Plain; Charset="UTF-8"', form), await fp('POST', '/u', 'text/plain;charset=utf-8', form), 'content-type spelling')
  t.not(await fp('POST', '/u', 'multipart/form-data; boundary=AbC', form), await fp('POST', '/u', 'multipart/form-data; boundary=abc', form), 'a boundary keeps its case')
  t.not(await fp('POST', '/u', 'application/json', '{}'), await fp('POST', '/u', 'application/json; charset=utf-8', '{}'), 'a parameter counts')
})
