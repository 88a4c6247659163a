/**
 * Killing an idle worker costs no request, POSTs included: a try on a socket to a worker that just
 * died, pooled or new, provably sent nothing — the kernel refused its write (EPIPE), or (claylb's own
 * workers only, UpstreamConn.resetUnread) the dying worker's socket still held the whole request,
 * written in one buffer, unread when the kernel closed it (ECONNRESET on a Unix socket) — and the raw
 * engine makes that try again on another upstream whatever the method (`reason="not-sent"`). Between
 * the SIGKILL and the kernel closing the worker's sockets, requests are still written to them: a
 * reset is then the only sign, which is why the worker rule is needed. Every one of the 90 POSTs must
 * be answered by a live worker.
 */
import t from 'tap'
import { request } from 'undici'
import { startClaylb } from '../helpers/claylb.js'
import { agent } from '../helpers/http.js'
import { status, until } from '../workers/load.js'

interface Result { status: number, body: string, error?: string, victim?: string }

async function post (url: string, i: number): Promise<Result> {
  const body = `order-${i}-${'x'.repeat(i % 7 * 100)}`
  try {
    const r = await request(`${url}/echo`, { method: 'POST', body, dispatcher: agent, headers: { 'content-type': 'text/plain' } })
    const got = await r.body.text()
    return { status: r.statusCode, body: got === body ? 'echoed' : `wrong body: ${got.slice(0, 300)}` }
  } catch (err) {
    return { status: 0, body: '', error: (err as Error).message }
  }
}

t.test('kill -9 of an idle worker, then POSTs at once: every POST answered', async (t) => {
  const lb = await startClaylb({ args: ['--workers', '2'], config: { engine: 'raw', log: { access: false } } })
  t.teardown(() => lb.stop())
  const failed: Result[] = []
  let total = 0
  for (let round = 0; round < 3; round++) {
    const before = await until(() => status(lb.admin), (s) => s.workers.filter((w) => w.state === 'ready').length === 2, 20_000, 'two ready workers')
    // warm: 24 requests held 200 ms at once leave ~12 keep-alive sockets to each worker idle in the
    // engine's pools: more than the picks of the dead worker before the supervisor sees its death
    const warm = await Promise.all(Array.from({ length: 24 }, () => request(`${lb.url}/delay/200`, { dispatcher: agent }).then((r) => r.body.text().then(() => r.statusCode), () => 0)))
    t.same(warm.filter((s) => s !== 200), [], `round ${round}: warm-up served`)
    await new Promise((resolve) => setTimeout(resolve, 50))
    const victim = before.workers[round % 2]!
    process.kill(victim.pid, 'SIGKILL')
    // at once, three clients of ten POSTs each: the supervisor has not seen the death yet, so tries
    // go to the dead worker's pooled sockets
    const lane = async (l: number): Promise<Result[]> => {
      const out: Result[] = []
      for (let i = 0; i < 10; i++) out.push(await post(lb.url, l * 10 + i))
      return out
    }
    const results = (await Promise.all([lane(0), lane(1), lane(2)])).flat()
    total += results.length
    for (const r of results) if (r.status !== 200 || r.body !== 'echoed') failed.push({ ...r, victim: victim.id })
    await until(() => status(lb.admin), (s) => !s.workers.some((w) => w.id === victim.id), 20_000, 'the dead worker gone')
  }
  t.equal(total, 90)
  t.same(failed, [], `every POST answered (${failed.length} of ${total} failed)`)
  const m = await (await request(`${lb.admin}/metrics`)).body.text()
  t.match(m, /claylb_upstream_tries_total\{[^}]*outcome="connect-failed"[^}]*\} [1-9]/, 'some tries met a dead worker\'s socket')
  t.match(m, /claylb_retries_total\{reason="not-sent"\} [1-9]/, 'and were made again, counted as not-sent')
})
