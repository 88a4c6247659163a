/**
 * The HTTP-level idempotency cases every front passes: the proxy (two claylb instances sharing one
 * Redis) and the Express / Fastify / node:http middleware. The server side must:
 *  - route POST /orders (required key) and POST /big (optional key) through the idempotency layer,
 *    with lockSeconds 1 and maxResponseBytes 4096;
 *  - answer POST /orders with 201 JSON { id, worker, createdAt, ...body }, a set-cookie and a location,
 *    honouring x-demo-delay-ms (answer later, after the order was created);
 *  - answer POST /big?n=N with N bytes.
 */
import net from 'node:net'
import type { Test } from 'tap'
import { Agent, request } from 'undici'
import { sleep } from '../helpers/http.js'

export interface HttpTarget {
  /** entry points; consecutive requests alternate over them */
  urls: readonly string[]
  /** executions of POST /orders so far */
  orders (): Promise<number>
  /** executions of POST /big so far; without it the too-large case is skipped (covered elsewhere) */
  bigs?: () => Promise<number>
  /** the server's POST /orders sets a cookie (to check replays drop it) */
  setsCookie?: boolean
  /** idempotency records held now */
  records (): Promise<number>
}

export const MAX_RESPONSE_BYTES = 4096
export const LEASE_MS = 1000

const agent = new Agent({ connections: 128, keepAliveTimeout: 1000 })

export interface Answer { status: number, headers: Record<string, string | string[] | undefined>, body: string }

export async function send (url: string, o: { path?: string, key?: string | string[], body?: unknown, headers?: Record<string, string> } = {}): Promise<Answer> {
  const headers: string[] = ['content-type', 'application/json']
  if (o.key !== undefined) for (const k of ([] as string[]).concat(o.key)) headers.push('idempotency-key', k)
  for (const [k, v] of Object.entries(o.headers ?? {})) headers.push(k, v)
  const body = o.body === undefined ? '{"amount":10,"item":"book"}' : typeof o.body === 'string' ? o.body : JSON.stringify(o.body)
  const r = await request(url + (o.path ?? '/orders'), { method: 'POST', headers, body, dispatcher: agent })
  return { status: r.statusCode, headers: r.headers, body: await r.body.text() }
}

let n = 0
export const newKey = (): string => `k-${process.pid}-${Date.now().toString(36)}-${++n}`
const problemType = (a: Answer): string => (JSON.parse(a.body) as { type: string }).type

export function httpConformance (t: Test, getTarget: () => HttpTarget): void {
  let target: HttpTarget
  t.before(() => { target = getTarget() })
  const url = (i: number): string => target.urls[i % target.urls.length]!

  t.test('50 identical POSTs with one key at once: one execution; every answer is the stored response or 409', async (t) => {
    const before = await target.orders()
    const key = newKey()
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => send(url(i), { key, headers: { 'x-demo-delay-ms': '100' } })))
    t.equal(await target.orders(), before + 1, 'exactly one execution')
    const ok = answers.filter((a) => a.status === 201)
    const conflict = answers.filter((a) => a.status === 409)
    const other = answers.filter((a) => a.status !== 201 && a.status !== 409)
    t.equal(ok.length + conflict.length, 50, `statuses: ${[...new Set(answers.map((a) => a.status))].join(',')} ${other.slice(0, 2).map((a) => a.body).join(' | ')}`)
    t.ok(ok.length >= 1, 'the original answered')
    t.equal(new Set(ok.map((a) => a.body)).size, 1, 'every 201 carries the same body bytes')
    for (const c of conflict) {
      t.equal(problemType(c), 'urn:claylb:problem:idempotency-in-flight')
      t.ok(Number(c.headers['retry-after']) >= 1, 'a retry-after')
    }
    const replay = await send(url(1), { key })
    t.equal(replay.status, 201)
    t.equal(replay.body, ok[0]!.body, 'the stored response, byte for byte')
    t.equal(replay.headers['idempotent-replayed'], 'true')
    t.equal(JSON.parse(replay.body).id, JSON.parse(ok[0]!.body).id, 'same order id')
  })

  t.test('a retry sent 0 ms after the full answer is always a replay (200 times)', async (t) => {
    const before = await target.orders()
    let replays = 0
    const bad: string[] = []
    for (let i = 0; i < 200; i++) {
      const key = newKey()
      const first = await send(url(i), { key, body: { amount: i } })
      const again = await send(url(i + 1), { key, body: { amount: i } })
      if (first.status === 201 && again.status === 201 && again.body === first.body && again.headers['idempotent-replayed'] === 'true') replays++
      else if (bad.length < 3) bad.push(`${first.status}/${again.status} ${again.body.slice(0, 120)}`)
    }
    t.equal(replays, 200, bad.join(' | '))
    t.equal(await target.orders(), before + 200, 'one execution per key')
  })

  t.test('reordered JSON and whitespace replay; another amount is 422 and the record still replays', async (t) => {
    const before = await target.orders()
    const key = newKey()
    const first = await send(url(0), { key, body: '{"amount":10,"item":"book","meta":{"a":1,"b":[1,2]}}' })
    t.equal(first.status, 201)
    const reordered = await send(url(1), { key, body: ' {\n  "meta": { "b": [1, 2], "a": 1 },\n  "item" : "book",\n  "amount": 10\n}\n' })
    t.equal(reordered.status, 201)
    t.equal(reordered.body, first.body)
    t.equal(reordered.headers['idempotent-replayed'], 'true')
    const other = await send(url(0), { key, body: '{"amount":11,"item":"book","meta":{"a":1,"b":[1,2]}}' })
    t.equal(other.status, 422)
    t.equal(problemType(other), 'urn:claylb:problem:idempotency-key-mismatch')
    t.equal(other.headers['content-type'], 'application/problem+json')
    const still = await send(url(1), { key, body: '{"amount":10,"item":"book","meta":{"a":1,"b":[1,2]}}' })
    t.equal(still.status, 201)
    t.equal(still.body, first.body, 'the first record is untouched')
    t.equal(await target.orders(), before + 1)
  })

  t.test('a mismatched request while the first is in flight: 422, not executed, claim untouched', async (t) => {
    const before = await target.orders()
    const key = newKey()
    const first = send(url(0), { key, body: { amount: 1 }, headers: { 'x-demo-delay-ms': '800' } })
    await sleep(250)
    const mismatched = await send(url(1), { key, body: { amount: 2 } })
    t.equal(mismatched.status, 422)
    const dup = await send(url(1), { key, body: { amount: 1 } })
    t.equal(dup.status, 409, 'the claim is still in flight')
    const a = await first
    t.equal(a.status, 201)
    t.equal(JSON.parse(a.body).amount, 1)
    t.equal(await target.orders(), before + 1, 'the mismatched request never executed')
  })

  t.test('an original slower than the lease keeps its claim (renewal): duplicates get 409, one execution', async (t) => {
    const before = await target.orders()
    const key = newKey()
    const first = send(url(0), { key, headers: { 'x-demo-delay-ms': String(LEASE_MS * 2.5) } })
    await sleep(LEASE_MS * 1.6)
    const dup = await send(url(1), { key })
    t.equal(dup.status, 409, 'still claimed after the first lease ran out')
    const a = await first
    t.equal(a.status, 201)
    const replay = await send(url(1), { key })
    t.equal(replay.body, a.body)
    t.equal(await target.orders(), before + 1, 'no duplicate execution')
  })

  t.test('two clients (different authorization) with the same key get separate results', async (t) => {
    const before = await target.orders()
    const key = newKey()
    const alice = await send(url(0), { key, headers: { authorization: 'Bearer alice' } })
    const bob = await send(url(1), { key, headers: { authorization: 'Bearer bob' } })
    t.equal(alice.status, 201)
    t.equal(bob.status, 201)
    t.not(JSON.parse(alice.body).id, JSON.parse(bob.body).id, 'two orders')
    t.equal((await send(url(1), { key, headers: { authorization: 'Bearer alice' } })).body, alice.body, 'alice replays hers')
    t.equal((await send(url(0), { key, headers: { authorization: 'Bearer bob' } })).body, bob.body, 'bob replays his')
    t.equal(await target.orders(), before + 2)
  })

  t.test('replays never carry set-cookie and say idempotent-replayed: true', async (t) => {
    const key = newKey()
    const first = await send(url(0), { key })
    if (target.setsCookie !== false) t.ok(first.headers['set-cookie'], 'the original sets a cookie')
    t.notOk(first.headers['idempotent-replayed'])
    const replay = await send(url(1), { key })
    t.equal(replay.status, 201)
    t.notOk(replay.headers['set-cookie'], 'no set-cookie on replay')
    t.equal(replay.headers['location'], first.headers['location'], 'end-to-end headers replayed')
    t.equal(replay.headers['content-type'], first.headers['content-type'])
    t.equal(replay.headers['idempotent-replayed'], 'true')
  })

  t.test('key fuzzing: 400 problem+json, nothing executed, nothing stored', async (t) => {
    const orders = await target.orders()
    const records = await target.records()
    const cases: Array<[string, string | string[]]> = [
      ['empty', ''], ['256 chars', 'a'.repeat(256)], ['comma', 'a,b'], ['two headers', ['same', 'same']],
      ['{tag}', '{tag}'], ['*', '*'], ['quoted empty', '""'], ['space', 'a b'],
    ]
    for (const [name, key] of cases) {
      const a = await send(url(0), { key })
      t.equal(a.status, 400, name)
      t.equal(a.headers['content-type'], 'application/problem+json', name)
    }
    const missing = await send(url(1), {})
    t.equal(missing.status, 400, 'missing key on a required route')
    t.equal(problemType(missing), 'urn:claylb:problem:idempotency-key-missing')
    // CR/LF cannot be sent by a well-behaved client: write the bytes ourselves
    const raw = await rawRequest(url(0), 'POST /orders HTTP/1.1\r\nHost: x\r\nIdempotency-Key: a\rb\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}')
    t.match(raw, /^HTTP\/1\.1 400 /, 'CR inside the key')
    t.equal(await target.orders(), orders, 'nothing executed')
    t.equal(await target.records(), records, 'nothing stored')
  })

  t.test('a response over maxResponseBytes: a too-large tombstone, never a second execution', async (t) => {
    if (target.bigs === undefined) {
      t.pass('no POST /big on this server: covered by the suites that have it')
      return
    }
    const before = await target.bigs()
    const key = newKey()
    const first = await send(url(0), { key, path: `/big?n=${MAX_RESPONSE_BYTES + 1000}` })
    t.equal(first.status, 200)
    t.equal(first.body.length, MAX_RESPONSE_BYTES + 1000, 'the original gets the whole body')
    const retry = await send(url(1), { key, path: `/big?n=${MAX_RESPONSE_BYTES + 1000}` })
    t.equal(retry.status, 409)
    t.equal(problemType(retry), 'urn:claylb:problem:response-too-large-to-replay')
    const small = newKey()
    const s1 = await send(url(0), { key: small, path: '/big?n=3000' })
    const s2 = await send(url(1), { key: small, path: '/big?n=3000' })
    t.equal(s2.body, s1.body, 'a response under the limit replays')
    t.equal(await target.bigs(), before + 2, 'one execution per key')
  })
}

function rawRequest (url: string, text: string): Promise<string> {
  const u = new URL(url)
  return new Promise((resolve, reject) => {
    const s = net.connect(Number(u.port), u.hostname, () => s.end(text))
    let out = ''
    s.setEncoding('utf8').on('data', (d: string) => { out += d })
    s.on('close', () => resolve(out))
    s.on('error', reject)
  })
}
