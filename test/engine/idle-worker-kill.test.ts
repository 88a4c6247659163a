/**
 * Killing an idle worker costs no request, POSTs included: a pooled keep-alive socket to a worker that
 * just died fails before the worker could read a byte (EPIPE, ECONNRESET, or its FIN), and the raw
 * engine retries that try on another upstream whatever the method (Envoy's reset-before-request).
 * (A NEW connection the kernel accepted for the dying process and then reset is not retried for a
 * POST: nothing tells it apart from a worker that read the request and crashed. The pools here hold
 * more idle sockets than the dead worker is picked, so every pick meets a pooled one.)
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
  // A try on a pooled socket the dead worker left is always made again. The one case that is not: a
  // NEW connection the kernel accepted for the dying process in the instant before its sockets closed,
  // then reset. Nothing tells that apart from a worker that read the POST and crashed, so it is a 502
  // (the documented limit; seen 1 in 90 in one of two CI runs, 0 in the others). Anything else fails.
  // The client's problem names no upstream and no error (they are the log's, see README "Errors"):
  // each such 502 must have its log line naming the killed worker and a reset.
  const resets = lb.logs.filter((l) => l['status'] === 502 && l['path'] === '/echo' && /^upstream \S+ failed: (ECONNRESET|EPIPE)$/.test(String(l['msg'])))
  const documented = (r: Result & { victim?: string }): boolean => r.status === 502 && r.body.includes('upstream-failed')
  t.same(failed.filter((r) => !documented(r)), [], `every POST answered, but for a fresh connection reset by the dying worker (${failed.length} of ${total})`)
  for (const victim of new Set(failed.map((r) => r.victim))) {
    const n = failed.filter((r) => r.victim === victim).length
    t.ok(resets.filter((l) => l['upstream'] === victim).length >= n, `the ${n} 502(s) of the kill of ${victim} are logged as that worker's reset`)
  }
  t.ok(failed.length <= 3, `at most one such reset per kill: ${failed.length} in 3 kills`)
  const m = await (await request(`${lb.admin}/metrics`)).body.text()
  t.match(m, /claylb_upstream_tries_total\{[^}]*outcome="connect-failed"[^}]*\} [1-9]/, 'some tries met a dead pooled socket and were made again')
})
