/**
 * The fingerprint's canonical JSON, property-tested: any two spellings of one value give one text,
 * two different values never do, and it accepts exactly what JSON.parse accepts (bar duplicate names).
 */
import t from 'tap'
import { canonicalJson, JsonDuplicateMemberError, JsonSyntaxError, MAX_DEPTH } from '../../src/shared/idempotency/canonical-json.js'
import { BodyFingerprint, fingerprintValue } from '../../src/shared/idempotency/fingerprint.js'
import { ProxyError } from '../../src/shared/errors.js'

/** a small seeded PRNG (mulberry32): the same cases every run, many of them */
function rng (seed: number): () => number {
  let a = seed
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let x = Math.imul(a ^ (a >>> 15), 1 | a)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

type Num = { neg: boolean, digits: string, exp: number } // digits: no leading or trailing zero; '' is zero
type Val = null | boolean | string | Num | Val[] | { members: Array<[string, Val]> }
const isNum = (v: Val): v is Num => typeof v === 'object' && v !== null && 'digits' in v
const isObj = (v: Val): v is { members: Array<[string, Val]> } => typeof v === 'object' && v !== null && 'members' in v

/** the value's identity, computed from the model (never from text) */
function key (v: Val): string {
  if (v === null || typeof v === 'boolean') return String(v)
  if (typeof v === 'string') return `s${JSON.stringify(v)}`
  if (isNum(v)) return v.digits === '' ? 'n0' : `n${v.neg ? '-' : ''}${v.digits}e${v.exp}`
  if (Array.isArray(v)) return `[${v.map(key).join(',')}]`
  return `{${[...v.members].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map(([k, x]) => `${JSON.stringify(k)}:${key(x)}`).join(',')}}`
}

function gen (r: () => number, depth: number, small: boolean): Val {
  const pick = Math.floor(r() * (depth > 2 ? 4 : 6))
  const NAMES = small ? ['a', 'b'] : ['a', 'b', 'amount', 'é', '\u0000', 'a\u0301', '\ud83d\ude00', 'B']
  switch (pick) {
    case 0: return r() < 0.5 ? null : r() < 0.5
    case 1: return small ? ['x', 'y'][Math.floor(r() * 2)]! : ['', 'x', 'line\nbreak', 'quote"', '\\', '\u2028', 'é', '\ud800'][Math.floor(r() * 8)]!
    case 2: case 3: {
      // around 2^53, long mantissas, tiny and huge exponents, zero
      if (r() < 0.1) return { neg: r() < 0.5, digits: '', exp: 0 }
      const len = small ? 1 + Math.floor(r() * 2) : 1 + Math.floor(r() * 25)
      let digits = String(1 + Math.floor(r() * 9))
      for (let i = 1; i < len; i++) digits += String(Math.floor(r() * (small ? 2 : 10)))
      digits = digits.replace(/0+$/, '')
      return { neg: r() < 0.3, digits, exp: small ? Math.floor(r() * 3) - 1 : Math.floor(r() * 60) - 30 }
    }
    case 4: return Array.from({ length: Math.floor(r() * 4) }, () => gen(r, depth + 1, small))
    default: {
      const names = [...NAMES].sort(() => r() - 0.5).slice(0, Math.floor(r() * 4))
      return { members: names.map((n) => [n, gen(r, depth + 1, small)]) }
    }
  }
}

const WS = ['', ' ', '\n', '\t', '\r\n  ']
function spellString (r: () => number, s: string): string {
  let out = '"'
  for (const ch of s) {
    const c = ch.codePointAt(0)!
    if (ch === '"' || ch === '\\' || c < 0x20 || r() < 0.2) {
      for (const unit of ch.split('')) out += `\\u${unit.charCodeAt(0).toString(16).padStart(4, '0')}`
    } else if (ch === '/' && r() < 0.5) out += '\\/'
    else out += ch
  }
  return out + '"'
}
function spellNumber (r: () => number, n: Num): string {
  const sign = n.neg ? '-' : ''
  if (n.digits === '') return sign + ['0', '0.0', '0e5', '0.000E-3'][Math.floor(r() * 4)]!
  const extra = Math.floor(r() * 3)
  const d = n.digits + '0'.repeat(extra)
  const e = n.exp - extra
  const form = Math.floor(r() * 3)
  if (form === 0 && e >= 0 && e < 40) return sign + d + '0'.repeat(e)
  if (form === 1 && e < 0) {
    const f = -e
    return sign + (f >= d.length ? `0.${'0'.repeat(f - d.length)}${d}` : `${d.slice(0, d.length - f)}.${d.slice(d.length - f)}`)
  }
  const E = r() < 0.5 ? 'e' : 'E'
  return `${sign}${d}${E}${e >= 0 && r() < 0.5 ? '+' : ''}${e}`
}
function spell (r: () => number, v: Val): string {
  const w = (): string => WS[Math.floor(r() * WS.length)]!
  if (v === null || typeof v === 'boolean') return String(v)
  if (typeof v === 'string') return spellString(r, v)
  if (isNum(v)) return spellNumber(r, v)
  if (Array.isArray(v)) return `[${w()}${v.map((x) => w() + spell(r, x) + w()).join(',')}${w()}]`
  const members = [...v.members].sort(() => r() - 0.5)
  return `{${w()}${members.map(([k, x]) => `${w()}${spellString(r, k)}${w()}:${w()}${spell(r, x)}`).join(',')}${w()}}`
}

t.test('one value, any spelling: one canonical text (2,000 random values, 3 spellings each)', async (t) => {
  const r = rng(1)
  let bad = 0
  for (let i = 0; i < 2000; i++) {
    const v = gen(r, 0, false)
    const texts = [spell(r, v), spell(r, v), spell(r, v)]
    const canon = texts.map(canonicalJson)
    if (canon[0] !== canon[1] || canon[1] !== canon[2]) {
      if (bad++ < 3) t.fail(`one value, different texts: ${texts.join(' | ')} -> ${canon.join(' | ')}`)
    }
  }
  t.equal(bad, 0, 'every spelling of a value canonicalised alike')
})

t.test('two values: one text exactly when the model says they are equal (5,000 pairs from a small domain)', async (t) => {
  const r = rng(2)
  let equalPairs = 0
  let bad = 0
  for (let i = 0; i < 5000; i++) {
    const a = gen(r, 1, true)
    const b = gen(r, 1, true)
    const same = key(a) === key(b)
    if (same) equalPairs++
    if ((canonicalJson(spell(r, a)) === canonicalJson(spell(r, b))) !== same) {
      if (bad++ < 3) t.fail(`${key(a)} vs ${key(b)}: canonical equality disagrees with the model (${same})`)
    }
  }
  t.equal(bad, 0, 'canonical equality = value equality')
  t.ok(equalPairs > 50 && equalPairs < 4900, `both kinds of pair were tried (${equalPairs} equal)`)
})

t.test('accepts exactly what JSON.parse accepts (20,000 mutated documents), but refuses duplicate names', async (t) => {
  const r = rng(3)
  const ALPHABET = ['{', '}', '[', ']', ',', ':', '"', '\\', '-', '+', '.', 'e', '0', '1', ' ', 'a', 'u', 'n', 't', '\u0001']
  let disagree = 0
  let rejected = 0
  let duplicates = 0
  for (let i = 0; i < 20_000; i++) {
    // every tenth document repeats a member name
    const dupName = spellString(r, 'a')
    let s = i % 10 === 0 ? `{${dupName}:${spell(r, gen(r, 1, true))},${spell(r, 'b')}:1,${dupName}:${spell(r, gen(r, 1, true))}}` : spell(r, gen(r, 0, i % 2 === 0))
    for (let m = Math.floor(r() * 3) + (i % 10 === 0 ? 0 : 1); m > 0; m--) {
      const at = Math.floor(r() * (s.length + 1))
      const op = Math.floor(r() * 3)
      const ch = ALPHABET[Math.floor(r() * ALPHABET.length)]!
      s = op === 0 ? s.slice(0, at) + ch + s.slice(at) : op === 1 ? s.slice(0, at) + s.slice(at + 1) : s.slice(0, at) + ch + s.slice(at + 1)
    }
    let parsed = true
    try { JSON.parse(s) } catch { parsed = false }
    let ours: 'ok' | 'syntax' | 'duplicate' = 'ok'
    try { canonicalJson(s) } catch (err) {
      ours = err instanceof JsonDuplicateMemberError ? 'duplicate' : 'syntax'
      if (!(err instanceof JsonSyntaxError) && !(err instanceof JsonDuplicateMemberError)) throw err
    }
    if (ours === 'duplicate') duplicates++
    if (!parsed) rejected++
    if ((ours === 'syntax') === parsed) {
      if (disagree++ < 3) t.fail(`JSON.parse ${parsed ? 'accepts' : 'refuses'}, we say ${ours}: ${JSON.stringify(s)}`)
    }
  }
  t.equal(disagree, 0, 'same verdict as JSON.parse on every document')
  t.ok(rejected > 2000, `invalid documents were tried (${rejected})`)
  t.ok(duplicates > 300, `duplicate names were met and refused (${duplicates})`)
})

t.test('the cases from the issue', async (t) => {
  t.not(canonicalJson('{"to":1234567890123456789}'), canonicalJson('{"to":1234567890123456790}'), 'neighbours past 2^53 differ')
  t.equal(canonicalJson('{"to":1234567890123456789}'), canonicalJson('{ "to" : 1234567890123456789.000 }'))
  t.equal(canonicalJson('10'), canonicalJson('10.0'))
  t.equal(canonicalJson('10'), canonicalJson('1e1'))
  t.equal(canonicalJson('10'), canonicalJson('100E-1'))
  t.equal(canonicalJson('0'), canonicalJson('-0.0e7'), 'zero has one value')
  t.not(canonicalJson('0.1'), canonicalJson('0.10000000000000001'), 'no float rounding')
  t.not(canonicalJson('1e400'), canonicalJson('1e401'), 'beyond double range, still exact')
  t.equal(canonicalJson('1e99999999999999999999'), canonicalJson('10e99999999999999999998'), 'huge exponents, exact')
  t.throws(() => canonicalJson('{"amount":1,"amount":999}'), JsonDuplicateMemberError)
  t.throws(() => canonicalJson('{"a":1,"\\u0061":1}'), JsonDuplicateMemberError, 'one name, two spellings')
  t.throws(() => canonicalJson('{"x":{"a":1,"a":1}}'), JsonDuplicateMemberError, 'nested, even with equal values')
  // the first repeat in document order is the one reported, wherever it is nested
  const firstRepeat = (text: string): string => { try { canonicalJson(text); return '' } catch (err) { return (err as Error).message } }
  t.equal(firstRepeat('{"b":1,"b":2,"a":{"c":1,"c":2}}'), 'duplicate member name "b" at offset 7')
  t.equal(firstRepeat('{"b":1,"a":{"c":1,"c":2},"b":2}'), 'duplicate member name "c" at offset 18')
  t.equal(firstRepeat('{"z":1,"\\u007a":2,"z":3}'), 'duplicate member name "z" at offset 7')
  t.equal(canonicalJson('{"b":1,"a":[true,null,"x"]}'), '{"a":[true,null,"x"],"b":1e0}')
  t.throws(() => canonicalJson('['.repeat(MAX_DEPTH + 5) + ']'.repeat(MAX_DEPTH + 5)), JsonSyntaxError, 'a hostile depth is refused, not a stack overflow')
})

t.test('fingerprints: big integers, duplicate members (400 invalid-json), invalid UTF-8, parsed values', async (t) => {
  const fp = (body: string | Buffer, type = 'application/json'): string => {
    const f = new BodyFingerprint('POST', '/orders', type)
    const b = Buffer.isBuffer(body) ? body : Buffer.from(body)
    f.update(b)
    const d = f.digest(b)
    if (typeof d !== 'string') throw new Error('a small body is fingerprinted inline')
    return d
  }
  t.not(fp('{"to":1234567890123456789}'), fp('{"to":1234567890123456790}'))
  t.equal(fp('{"amount":10,"to":"x"}'), fp('{ "to":"x", "amount":1e1 }'))
  const dup = (() => { try { fp('{"amount":1,"amount":999}'); return undefined } catch (err) { return err } })()
  t.ok(dup instanceof ProxyError && dup.code === 'CLAYLB_INVALID_JSON' && dup.status === 400, 'duplicate members: 400 invalid-json')
  t.not(fp(Buffer.from([0x22, 0xff, 0x22])), fp(Buffer.from([0x22, 0xfe, 0x22])), 'invalid UTF-8 is compared by bytes, never collapsed to U+FFFD')
  t.not(fp('not json'), fp('not  json'), 'not JSON: bytes')
  t.equal(fingerprintValue('POST', '/orders', 'application/json', { b: 1, a: 10 }), fingerprintValue('POST', '/orders', 'application/json', { a: 1e1, b: 1 }))
  t.equal(fingerprintValue('POST', '/orders', 'application/json', { a: 10 }), fp('{"a":10.0}'), 'a parsed value and its raw text agree')
})
