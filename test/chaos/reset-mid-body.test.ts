/**
 * Chaos: workers that reset mid-body (`x-demo-fault: reset-mid-body`, the demo app with
 * `workers.faults`), about 15 times a second across GET /bytes/:n, GET /stream/:n, POST /echo and keyed
 * POST /orders, beside the mixed load (harness.ts). What the fault's own clients must see:
 * - a cut GET never looks whole: undici fails reading the body, and on the wire the answer is framed
 *   (`content-length` or chunked) and ends short of its length or its last chunk;
 * - POST /echo cut while its body is still uploading: 502 upstream-failed, read by the client (not a
 *   broken pipe), and tried once (not retried: the body was streamed to the worker and it is a POST);
 * - keyed POST /orders cut after the order ran: 502, never the cut answer replayed; the route is
 *   `upstreamDedupes` (the demo app dedupes on claylb-idempotency-id), so the retry is forwarded again
 *   and gets the order the cut request made (never a second order), and that answer, whole, is what
 *   is replayed from then on.
 */
import t from 'tap'
import { Readable } from 'node:stream'
import { Agent, request } from 'undici'
import { sleep } from '../helpers/http.js'
import { scrape, value } from '../helpers/metrics.js'
import { RawClient } from '../helpers/raw.js'
import { chaosRun } from './harness.js'
import { problem } from './mixed-load.js'

const FAULT = { 'x-demo-fault': 'reset-mid-body' }
const PER_SECOND = 15
/** faults the scenario asserts it injected (at PER_SECOND, about 8 s of its 12 on a quiet machine) */
const CUTS = 120

interface Answer { status: number, type: string, replayed: boolean, deduped?: boolean, body: string, error?: string }

t.test('workers reset mid-body under GETs, session increments and keyed POSTs', async (t) => {
  const seen: Record<string, number> = {}
  const wrong: string[] = []
  const note = (what: string, ok: boolean, detail = ''): void => {
    seen[what] = (seen[what] ?? 0) + 1
    if (!ok) wrong.push(`${what}: ${detail}`)
  }
  let cuts = 0
  let cutOrders = 0
  let dedupedOrders = 0
  let resetTries = 0
  let resetRetries = 0

  const { r, orders } = await chaosRun(t, {
    name: 'reset-mid-body',
    seconds: 12,
    async fault ({ lb, running }) {
      const agent = new Agent({ connections: 32 })
      const port = Number(new URL(lb.url).port)
      const before = await scrape(lb.admin)

      const call = async (method: string, path: string, headers: Record<string, string>, body?: string | Readable): Promise<Answer> => {
        try {
          const res = await request(lb.url + path, { method: method as 'GET', headers, body, dispatcher: agent })
          let text: string
          try {
            text = await res.body.text()
          } catch (err) {
            return { status: res.statusCode, type: '', replayed: false, body: '', error: (err as Error).message }
          }
          let type = ''
          if (res.statusCode >= 300 && String(res.headers['content-type']).startsWith('application/problem+json')) type = String((JSON.parse(text) as { type: unknown }).type)
          return { status: res.statusCode, type, replayed: res.headers['idempotent-replayed'] === 'true', deduped: res.headers['x-demo-deduped'] === 'true', body: text }
        } catch (err) {
          return { status: 0, type: '', replayed: false, body: '', error: `${(err as { code?: string }).code ?? ''} ${(err as Error).message}` }
        }
      }

      // undici's view: reading a cut body fails; a 502 is fine when nothing of the answer had gone out
      const getViaUndici = async (path: string): Promise<void> => {
        const a = await call('GET', path, FAULT)
        const cutSeen = a.status === 200 && a.error !== undefined
        note(`GET ${path.split('/')[1]} (undici) ${cutSeen ? '200 then error' : `${a.status} ${a.type || a.error || ''}`}`,
          cutSeen || (a.status === 502 && a.type === problem('upstream-failed')), `${a.status} ${a.error ?? `${a.body.length} bytes passed as whole`}`)
      }
      // the wire's view: the answer is framed, and ends short of its frame
      const getRaw = async (path: string, n: number, chunked: boolean): Promise<void> => {
        const c = await RawClient.connect(port)
        try {
          await c.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nx-demo-fault: reset-mid-body\r\nconnection: close\r\n\r\n`)
          const whole = await c.readResponse(5000) // a response only when it is complete by its framing
          const closed = await c.waitClosed(5000)
          const end = c.buffer.indexOf('\r\n\r\n')
          const head = c.buffer.slice(0, end + 2).toLowerCase()
          const body = c.buffer.slice(end + 4)
          const framed = end > 0 && (chunked ? head.includes('\r\ntransfer-encoding: chunked\r\n') && !body.endsWith('0\r\n\r\n') : head.includes(`\r\ncontent-length: ${n}\r\n`) && body.length < n)
          note(`GET ${path.split('/')[1]} (raw) ${whole === undefined ? 'cut short' : whole.status}`,
            whole === undefined ? closed && framed : whole.status === 502, whole === undefined ? `closed ${closed}, head ${JSON.stringify(head)}, ${body.length} bytes` : `${whole.status} passed as whole`)
        } finally {
          c.destroy()
        }
      }
      // still uploading when the worker resets: the client must read the 502, not a broken pipe
      const echo = async (drip: boolean): Promise<void> => {
        const body = drip
          ? Readable.from((async function * () { for (let i = 0; i < 16; i++) { yield Buffer.alloc(64 * 1024, 'e'); await sleep(10) } })())
          : '{"echo":"small"}'
        const a = await call('POST', '/echo', FAULT, body)
        note(`POST echo (${drip ? '1 MiB dripped' : 'small'}) ${a.status} ${a.type || a.error || ''}`, a.status === 502 && a.type === problem('upstream-failed'), `${a.status} ${a.error ?? a.body.slice(0, 100)}`)
      }
      const order = async (key: string): Promise<void> => {
        const headers = { 'content-type': 'application/json', 'idempotency-key': `"${key}"` }
        const body = '{"amount":10,"item":"cut"}'
        const first = await call('POST', '/orders', { ...headers, ...FAULT }, body)
        cutOrders++ // the worker cuts only after the order ran
        note(`POST orders cut: ${first.status} ${first.type || first.error || ''}`, first.status === 502 && first.type === problem('upstream-failed'), `${first.status} ${first.error ?? first.body.slice(0, 100)}`)
        // never the cut answer: 409 while the failure is being recorded, then the app's own answer for
        // the order the cut request made (it dedupes on the id claylb forwards), never a second order
        let fresh: Answer | undefined
        for (let i = 0; i < 40 && fresh === undefined; i++) {
          await sleep(i === 0 ? 20 : 150)
          const a = await call('POST', '/orders', headers, body)
          if (a.status === 409 && a.type === problem('idempotency-in-flight')) {
            note('POST orders retry: 409 idempotency-in-flight', true)
            continue
          }
          fresh = a
          if (a.status === 201 && a.deduped === true) dedupedOrders++
          note(`POST orders retry: ${a.status}${a.replayed ? ' replayed' : ''}${a.deduped === true ? ' deduped by the app' : ''}`, a.status === 201 && !a.replayed && a.deduped === true, `${a.status} ${a.error ?? a.body.slice(0, 100)}`)
        }
        if (fresh === undefined) return note('POST orders: the retry never got an answer', false, key)
        const again = await call('POST', '/orders', headers, body)
        note(`POST orders replay: ${again.status}${again.replayed ? ' replayed' : ''}`, again.status === 201 && again.replayed && again.body === fresh.body, `${again.status} ${again.body.slice(0, 100)}`)
      }

      const pending: Array<Promise<void>> = []
      // the goal is a count of faults, not a rate: a busy machine takes longer to inject them
      for (let i = 0; running(cuts >= CUTS); i++) {
        const n = 1000 + Math.floor(Math.random() * 200_000)
        switch (i % 6) {
          case 0: pending.push(i % 12 === 0 ? getViaUndici(`/bytes/${n}`) : getRaw(`/bytes/${n}`, n, false)); break
          case 1: pending.push(i % 12 === 1 ? getViaUndici('/stream/20') : getRaw('/stream/20', 0, true)); break
          case 2: case 4: pending.push(echo(i % 12 !== 2)); break
          default: pending.push(order(`cut-${process.pid}-${i}`))
        }
        cuts++
        await sleep(1000 / PER_SECOND)
      }
      await Promise.all(pending)
      await agent.close()
      const after = await scrape(lb.admin)
      resetTries = value(after, 'claylb_upstream_tries_total', { outcome: 'reset' }) - value(before, 'claylb_upstream_tries_total', { outcome: 'reset' })
      resetRetries = value(after, 'claylb_retries_total', { reason: 'reset' }) - value(before, 'claylb_retries_total', { reason: 'reset' })
    },
    faultOrders: () => ({ min: cutOrders, max: cutOrders }),
    faultSummary: () => ({ cuts, resetTries, resetRetries, cutOrders, dedupedOrders, faultAnswers: seen }),
  })

  t.ok(cuts >= CUTS, `faults injected: ${cuts}`)
  t.same(wrong, [], 'every cut answer was what the client must see')
  t.ok(cutOrders > 0 && dedupedOrders === cutOrders, `keyed orders cut: ${cutOrders}, each retry answered with the cut request's order: ${dedupedOrders}`)
  // each cut request was one try ending in a reset: none was tried again (a GET whose answer had
  // started cannot be; a POST whose body went upstream must not be)
  t.equal(resetRetries, 0, 'no retry after a reset')
  t.equal(resetTries, cuts, `one reset try per cut request: ${resetTries} tries for ${cuts} cuts`)
  // the faults touch only the requests that asked for them
  t.same(r.failures, {}, 'the mixed load saw no failure at all')
  t.equal(orders, r.keys + cutOrders, `orders: ${r.keys} keys of the load + ${cutOrders} cut, none twice`)
})
