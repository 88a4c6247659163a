/**
 * N proxy processes behind one primary (issue 15), with real processes and sockets: the load is
 * spread, the totals add up, a drain holds in every process, a proxy process killed under load is
 * replaced, SIGTERM leaves nothing behind, and there is one set of workers whatever N is.
 * Paced by progress (answers counted, /status read), never by time.
 */
import { execFileSync } from 'node:child_process'
import { readlinkSync, realpathSync } from 'node:fs'
import t from 'tap'
import { Agent, request } from 'undici'
import { startBackends } from '../helpers/backend.js'
import { startClaylb } from '../helpers/claylb.js'
import { json } from '../helpers/http.js'
import { scrape, value } from '../helpers/metrics.js'
import { until } from '../workers/load.js'

interface ProcessRow { pid: number, requests: number, inflight: number, connections: number, startedAt: string, snapshot: number }
interface Status { processes: ProcessRow[], totals: { requests: number }, workers: Array<{ pid: number, state: string }>, upstreams: Array<{ id: string, requests: number }> }

const status = (admin: string): Promise<Status> => json<Status>(`${admin}/status`)

/**
 * `total` GETs from `lanes` concurrent lanes; with `fresh` every request opens its own connection
 * (so each one is accepted anew, by whichever process the kernel or the primary gives it to).
 */
async function load (url: string, o: { total: number, lanes: number, fresh: boolean, path?: string, onAnswer?: (n: number) => Promise<void> | void }): Promise<{ ok: number, failed: number }> {
  const agent = new Agent({ connections: o.lanes, keepAliveTimeout: 2000 })
  let sent = 0
  let ok = 0
  let failed = 0
  const lane = async (): Promise<void> => {
    while (sent < o.total) {
      sent++
      try {
        const r = await request(`${url}${o.path ?? `/n/${sent}`}`, { dispatcher: agent, reset: o.fresh })
        await r.body.text()
        if (r.statusCode === 200) ok++
        else failed++
      } catch {
        failed++
      }
      await o.onAnswer?.(ok + failed)
    }
  }
  await Promise.all(Array.from({ length: o.lanes }, lane))
  await agent.close()
  return { ok, failed }
}

/** the binary a process runs (node's children run this node; the embedded Redis does not) */
function exeOf (pid: number): string {
  try {
    return readlinkSync(`/proc/${pid}/exe`)
  } catch {
    return ''
  }
}

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

t.test('two proxy processes both carry load, and /metrics counts what the client counted', async (t) => {
  const backends = await startBackends(['a', 'b'])
  const lb = await startClaylb({ args: ['--processes', '2', ...backends.flatMap((b) => ['--upstream', b.url])], config: { log: { access: false } } })
  t.teardown(async () => { await lb.stop(); await Promise.all(backends.map((b) => b.close())) })
  const before = await status(lb.admin)
  t.equal(before.processes.length, 2, 'two proxy processes')
  t.not(before.processes[0]!.pid, before.processes[1]!.pid)
  t.notOk(before.processes.some((p) => p.pid === lb.pid), 'the primary is not one of them')

  const total = 2000
  const r = await load(lb.url, { total, lanes: 16, fresh: true })
  t.equal(r.failed, 0, 'no request failed')
  const after = await status(lb.admin)
  for (const p of after.processes) {
    const share = p.requests / total
    t.ok(share >= 0.2 && share <= 0.8, `process ${p.pid} carried ${Math.round(share * 100)} % (20-80 %)`)
  }
  t.equal(after.totals.requests, total, '/status totals: every request')
  const s = await scrape(lb.admin)
  const counted = value(s, 'claylb_requests_total')
  t.ok(Math.abs(counted - total) <= total * 0.01, `claylb_requests_total ${counted} = the client's ${total} (±1 %)`)
  t.ok(Math.abs(value(s, 'claylb_request_duration_seconds_count') - total) <= total * 0.01, 'the duration histogram counts them too')
  t.equal(backends[0]!.count + backends[1]!.count, total, 'the backends saw them all')
  t.equal(after.upstreams.reduce((n, u) => n + u.requests, 0), total, "/status upstream counters are the processes' totals")
})

t.test('a drained upstream gets nothing from any process', async (t) => {
  const backends = await startBackends(['a', 'b'])
  const [a, b] = backends as [typeof backends[0], typeof backends[0]]
  const lb = await startClaylb({ args: ['--processes', '2', '--upstream', a.url, '--upstream', b.url], config: { log: { access: false } } })
  t.teardown(async () => { await lb.stop(); await Promise.all(backends.map((x) => x.close())) })
  await load(lb.url, { total: 200, lanes: 8, fresh: true })
  t.ok(b.count > 0, 'b served before the drain')
  const id = new URL(b.url).host
  // answered once every process applied the snapshot with b draining
  const d = await json(`${lb.admin}/upstreams/${id}/drain`, { method: 'POST' })
  t.equal(d['state'], 'draining')
  const seen = b.count
  const r = await load(lb.url, { total: 600, lanes: 8, fresh: true })
  t.equal(r.failed, 0)
  t.equal(b.count, seen, 'no request reached the drained upstream')
  const st = await status(lb.admin)
  for (const p of st.processes) t.ok(p.requests > 0, `process ${p.pid} served during the drain`)
  await json(`${lb.admin}/upstreams/${id}/ready`, { method: 'POST' })
  await load(lb.url, { total: 200, lanes: 8, fresh: true })
  t.ok(b.count > seen, 'back in service after ready')
})

t.test('kill -9 of one proxy process under load: < 1 % fail, and it is replaced', async (t) => {
  const backends = await startBackends(['a', 'b'])
  const lb = await startClaylb({ args: ['--processes', '2', ...backends.flatMap((b) => ['--upstream', b.url])], config: { log: { access: false } } })
  t.teardown(async () => { await lb.stop(); await Promise.all(backends.map((b) => b.close())) })
  const first = await status(lb.admin)
  const victim = first.processes[0]!.pid
  let killed = false
  const total = 3000
  const r = await load(lb.url, {
    total,
    lanes: 8,
    fresh: false,
    onAnswer: (n) => {
      if (!killed && n === 500) {
        killed = true
        process.kill(victim, 'SIGKILL')
      }
    },
  })
  t.ok(killed)
  t.ok(r.failed < total * 0.01, `${r.failed} of ${total} failed (< 1 %)`)
  const st = await until(() => status(lb.admin), (s) => s.processes.length === 2 && !s.processes.some((p) => p.pid === victim), 30_000, 'a replacement proxy process')
  t.notOk(alive(victim), 'the killed process is gone')
  await lb.waitForLog((l) => l['msg'] === 'proxy process exited' && l['processPid'] === victim)
  const replacementPid = st.processes.find((p) => p.pid !== first.processes[1]!.pid)!.pid
  await lb.waitForLog((l) => l['msg'] === 'proxy process listening' && l['processPid'] === replacementPid, 30_000)
  // the replacement accepts too: fresh connections reach both processes
  const fresh = await load(lb.url, { total: 400, lanes: 8, fresh: true })
  t.equal(fresh.failed, 0)
  const again = await status(lb.admin)
  const replacement = again.processes.find((p) => p.pid === replacementPid)
  t.ok(replacement !== undefined && replacement.requests > 0, `the replacement serves (${replacement?.requests} of 400)`)
  t.ok(st.processes.length === 2)
})

t.test('--processes 2 --workers 3: exactly 3 workers; SIGTERM leaves no process behind', async (t) => {
  const lb = await startClaylb({ args: ['--processes', '2', '--workers', '3'], config: { log: { access: false } } })
  t.teardown(() => lb.stop('SIGKILL'))
  const st = await until(() => status(lb.admin), (s) => s.workers.filter((w) => w.state === 'ready').length === 3, 30_000, 'three ready workers')
  t.equal(st.workers.length, 3, 'one set of workers, not one per proxy process')
  t.equal(st.processes.length, 2)
  // the primary's children: 2 proxy processes and 3 workers, no other node process (the embedded Redis it may start is not one)
  const children = execFileSync('ps', ['-o', 'pid=', '--ppid', String(lb.pid)], { encoding: 'utf8' }).split('\n')
    .map((l) => Number(l.trim())).filter((pid) => pid > 0 && exeOf(pid) === realpathSync(process.execPath))
  const expected = [...st.processes.map((p) => p.pid), ...st.workers.map((w) => w.pid)].sort()
  t.same(children.sort(), expected, 'its children are the proxy processes and the workers')
  const r = await load(lb.url, { total: 300, lanes: 8, fresh: true, path: '/' })
  t.equal(r.failed, 0, 'the demo app answers through both processes')
  for (const p of (await status(lb.admin)).processes) t.ok(p.requests > 0, `process ${p.pid} served`)
  t.equal(await lb.stop('SIGTERM'), 0, 'exit 0')
  for (const pid of expected) t.notOk(alive(pid), `process ${pid} is gone`)
})

t.test('a primary killed with SIGKILL leaves no proxy process behind', async (t) => {
  const backends = await startBackends(['a'])
  const lb = await startClaylb({ args: ['--processes', '2', '--upstream', backends[0]!.url], config: { log: { access: false } } })
  t.teardown(async () => { await lb.stop('SIGKILL'); await backends[0]!.close() })
  const pids = (await status(lb.admin)).processes.map((p) => p.pid)
  t.equal(pids.length, 2)
  await lb.stop('SIGKILL')
  // each one sees its IPC channel close, drains and exits: paced by their exits, not a sleep
  await until(async () => pids.filter(alive), (left) => left.length === 0, 30_000, 'the proxy processes to exit')
  for (const pid of pids) t.notOk(alive(pid), `proxy process ${pid} is gone`)
})
