/**
 * (c) A keyed POST whose upstream runs it, then resets the connection before answering: the outcome
 * is unknown, so the record must say so — never released (a client's retry would run it again) and
 * never made again on another upstream by claylb. The client is told (502). On an `upstreamDedupes`
 * route the client's retry is forwarded under the same claylb-idempotency-id, and the app's dedupe
 * answers it with the first result: one effect.
 * The upstreams here note every effect by record id (a shared map stands for the app's database; both
 * dedupe on it, as one app would).
 */
import t from 'tap'
import { request } from 'undici'
import { startBackend } from '../helpers/backend.js'
import { startClaylb } from '../helpers/claylb.js'
import { startRedis } from '../helpers/redis.js'
import { headerOf, listenRaw, readRequests } from '../helpers/raw-upstream.js'

const redis = await startRedis({ useEnv: false })
t.teardown(() => redis.close())

/** effects by record id: what ran, however many times */
const effects = new Map<string, number>()
const ran = (id: string): void => { effects.set(id, (effects.get(id) ?? 0) + 1) }

/** runs every request it reads whole (an effect, unless its id already ran), then resets the connection before answering */
const bad = await listenRaw((s) => readRequests(s, (head) => {
  const id = headerOf(head, 'claylb-idempotency-id') ?? '?'
  if (!effects.has(id)) ran(id)
  s.resetAndDestroy()
}))
const badUrl = bad.url
t.teardown(() => bad.close())

/** an app that dedupes on claylb-idempotency-id: a repeat is answered with the first result, no effect */
const good = await startBackend((req, res) => {
  req.resume()
  req.on('end', () => {
    const id = String(req.headers['claylb-idempotency-id'])
    const deduped = effects.has(id)
    if (!deduped) ran(id)
    res.setHeader('x-deduped', String(deduped))
    res.end('order')
  })
})
t.teardown(() => good.close())

const config = {
  redis: { url: redis.url },
  idempotency: { routes: [{ match: 'POST /orders', required: true }, { match: 'POST /dedupe', required: true, upstreamDedupes: true }] },
  healthCheck: { enabled: false },
  outlier: { enabled: false },
  retry: { attempts: 3 },
  log: { access: false },
}
let keys = 0
const newKey = (): string => `keyed-reset-${process.pid}-${++keys}`

async function post (url: string, path: string, key: string): Promise<{ status: number, body: string, deduped: string | undefined }> {
  const r = await request(`${url}${path}`, { method: 'POST', body: '{"amount":10}', headers: { 'content-type': 'application/json', 'idempotency-key': key } })
  return { status: r.statusCode, body: await r.body.text(), deduped: r.headers['x-deduped'] as string | undefined }
}

t.test('a keyed POST run, then reset: 502, run once; the retry with the key is told outcome-unknown', async (t) => {
  // the resetting upstream alone: no other host to mask a second run
  const lb = await startClaylb({ args: ['--upstream', badUrl], config })
  t.teardown(() => lb.stop())
  for (let i = 0; i < 3; i++) {
    const before = new Map(effects)
    const key = newKey()
    const first = await post(lb.url, '/orders', key)
    t.equal(first.status, 502, 'the client is told it failed')
    const fresh = [...effects].filter(([id]) => !before.has(id))
    t.equal(fresh.length, 1, 'one record id ran')
    t.equal(fresh[0]![1], 1, 'and ran exactly once')
    const retry = await post(lb.url, '/orders', key)
    t.equal(retry.status, 409, 'the client\'s retry is refused')
    t.match(retry.body, /outcome-unknown/, 'as outcome-unknown')
    t.equal(effects.get(fresh[0]![0]), 1, 'not run again')
  }
})

t.test('on an upstreamDedupes route: 502, and the client\'s retry is forwarded under the same id: one effect, answered', async (t) => {
  const lb = await startClaylb({ args: ['--upstream', badUrl, '--upstream', good.url], config })
  t.teardown(() => lb.stop())
  let metBad = 0
  for (let i = 0; i < 6; i++) {
    const before = new Map(effects)
    const key = newKey()
    let r = await post(lb.url, '/dedupe', key)
    if (r.status === 502) {
      metBad++
      t.equal(effects.size, before.size + 1, 'the POST that met the reset ran there, and nowhere else')
      // the client retries with its key until an upstream answers (round-robin alternates)
      for (let n = 0; n < 4 && r.status === 502; n++) r = await post(lb.url, '/dedupe', key)
      t.equal(r.deduped, 'true', 'the app answered the retry with the first result')
    }
    t.equal(r.status, 200, `POST ${i} answered`)
    const fresh = [...effects].filter(([id]) => !before.has(id))
    t.equal(fresh.length, 1, 'one record id')
    t.equal(fresh[0]![1], 1, 'one effect')
    const again = await post(lb.url, '/dedupe', key)
    t.equal(again.status, 200, 'a retry replays the answer')
    t.equal(effects.get(fresh[0]![0]), 1, 'no second effect')
  }
  t.ok(metBad > 0, `some POSTs ran on the resetting upstream first (${metBad})`)
})
