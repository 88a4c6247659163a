import t from 'tap'
import { parseIdempotencyKey } from '../../src/idempotency/key.js'
import { BodyFingerprint, fingerprintValue } from '../../src/idempotency/fingerprint.js'

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

const fp = (method: string, target: string, ct: string | undefined, ...chunks: string[]): string => {
  const f = new BodyFingerprint(method, target, ct)
  for (const c of chunks) f.update(Buffer.from(c))
  return f.digest(Buffer.from(chunks.join('')))
}

t.test('JSON is compared by value: key order and whitespace do not matter', async (t) => {
  const a = fp('POST', '/orders', 'application/json', '{"amount":10,"item":{"b":1,"a":[1,2]}}')
  t.equal(fp('POST', '/orders', 'application/json; charset=utf-8', '{ "item": {"a":[1, 2],', ' "b":1},\n "amount" : 10 }'), a)
  t.equal(fp('POST', '/orders', 'application/vnd.x+json', '{"amount":10,"item":{"b":1,"a":[1,2]}}'), a, '+json types too')
  t.not(fp('POST', '/orders', 'application/json', '{"amount":11,"item":{"b":1,"a":[1,2]}}'), a, 'another amount')
  t.not(fp('POST', '/orders', 'application/json', '{"amount":10,"item":{"b":1,"a":[2,1]}}'), a, 'array order matters')
  t.not(fp('POST', '/orders/x', 'application/json', '{"amount":10,"item":{"b":1,"a":[1,2]}}'), a, 'path')
  t.not(fp('PUT', '/orders', 'application/json', '{"amount":10,"item":{"b":1,"a":[1,2]}}'), a, 'method')
  t.equal(fingerprintValue('POST', '/orders', { item: { a: [1, 2], b: 1 }, amount: 10 }), a, 'a parsed body gives the same fingerprint')
})

t.test('other bodies are compared by bytes, hashed chunk by chunk', async (t) => {
  t.equal(fp('POST', '/u', 'text/plain', 'ab', 'c'), fp('POST', '/u', 'text/plain', 'abc'))
  t.not(fp('POST', '/u', 'text/plain', '{"a":1,"b":2}'), fp('POST', '/u', 'text/plain', '{"b":2,"a":1}'))
  t.not(fp('POST', '/u', 'application/json', '{bad'), fp('POST', '/u', 'application/json', '{bad '), 'unparseable JSON by bytes')
  t.equal(fp('POST', '/u', undefined), fp('POST', '/u', 'application/json'), 'no body')
})
