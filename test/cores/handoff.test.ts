/**
 * Accept mode `handoff` (cores/handoff.ts; the default on Node without reusePort): the primary accepts
 * and sends each connection to the next serving proxy process in turn. It spreads connections evenly,
 * and a connection sent to a process that dies before it took it is closed, never left hanging: the
 * case node:cluster's round-robin got wrong (CLAYLB_ACCEPT=round-robin fails the second test).
 * Paced by events (a process stopped, answers counted, /status read), never by time.
 */
import net from 'node:net'
import t, { type Test } from 'tap'
import { request } from 'undici'
import { startBackends } from '../helpers/backend.js'
import { startClaylb, type Claylb } from '../helpers/claylb.js'
import { json } from '../helpers/http.js'
import { until } from '../workers/load.js'

interface Status { processes: Array<{ pid: number, requests: number }> }
const status = (admin: string): Promise<Status> => json<Status>(`${admin}/status`)
const mode = process.env['CLAYLB_TEST_ACCEPT'] ?? 'handoff'

/** one GET on a connection of its own; resolves with what became of it (a hang never resolves) */
function getOnFreshConnection (port: number): Promise<'answered' | 'closed'> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => s.write('GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n'))
    let got = ''
    s.setEncoding('latin1')
    s.on('data', (d: string) => { got += d })
    s.on('error', () => {})
    s.on('close', () => resolve(got.startsWith('HTTP/1.1 200') ? 'answered' : 'closed'))
  })
}

/** claylb with two proxy processes in `mode` before one backend, once both processes serve */
async function twoProcesses (t: Test, config: Record<string, unknown> = {}): Promise<Claylb> {
  const backends = await startBackends(['a'])
  const lb = await startClaylb({ args: ['--processes', '2', '--upstream', backends[0]!.url], env: { CLAYLB_ACCEPT: mode }, config: { log: { access: false }, ...config } })
  // SIGKILL: one test has already sent SIGTERM and waited for the exit
  t.teardown(async () => { await lb.stop('SIGKILL'); await Promise.all(backends.map((b) => b.close())) })
  await lb.waitForLog((l) => l['msg'] === 'proxy process listening' && l['process'] === 2)
  return lb
}

t.test('connections alternate between the processes', async (t) => {
  const lb = await twoProcesses(t)
  const before = await status(lb.admin)
  // one connection at a time: each is accepted, handed over and answered before the next opens
  for (let i = 0; i < 40; i++) {
    const r = await request(`${lb.url}/n/${i}`, { reset: true })
    await r.body.text()
    t.equal(r.statusCode, 200)
  }
  const after = await status(lb.admin)
  const served = after.processes.map((p) => p.requests - (before.processes.find((b) => b.pid === p.pid)?.requests ?? 0))
  t.same(served, [20, 20], `40 connections, one after another: ${served.join(' + ')}`)
})

t.test('a process that dies before it took its connections: those clients see a close, not a hang', async (t) => {
  const lb = await twoProcesses(t)
  const st = await status(lb.admin)
  const victim = st.processes[1]!.pid
  const port = Number(new URL(lb.url).port)
  // stopped, the victim reads nothing from its IPC channel: the connections sent to it wait there
  process.kill(victim, 'SIGSTOP')
  const outcomes = Array.from({ length: 10 }, () => getOnFreshConnection(port))
  // the other process answers its share; the victim's share is in flight to it
  const settled: Array<'answered' | 'closed'> = []
  for (const o of outcomes) void o.then((v) => settled.push(v))
  await until(async () => settled.length, (n) => n >= 5, 60_000, 'the running process answers its half')
  t.ok(settled.every((v) => v === 'answered'), 'the running process answered its connections')
  process.kill(victim, 'SIGKILL')
  // with the victim gone, every one of its connections is closed (a hang fails here, on tap's timeout)
  const all = await Promise.all(outcomes)
  t.equal(all.filter((v) => v === 'answered').length + all.filter((v) => v === 'closed').length, 10)
  t.ok(all.filter((v) => v === 'closed').length >= 1, `the victim's connections were closed: ${all.filter((v) => v === 'closed').length}`)
  // and the replacement takes connections again
  await lb.waitForLog((l) => l['msg'] === 'proxy process listening' && l['processPid'] !== victim && l['process'] === 2, 60_000)
  for (let i = 0; i < 4; i++) t.equal(await getOnFreshConnection(port), 'answered')
})

t.test('SIGTERM with an idle keep-alive client: the processes drain it at once, then claylb exits 0', async (t) => {
  // the client's idle limit at its longest (65 s): only the drain may close this connection soon
  const lb = await twoProcesses(t, { timeouts: { idleMs: 600_000 } })
  const port = Number(new URL(lb.url).port)
  const idle = net.connect(port, '127.0.0.1')
  let answer = ''
  idle.setEncoding('latin1')
  idle.on('data', (d: string) => { answer += d })
  idle.on('error', () => {})
  const closedByClaylb = new Promise<void>((resolve) => idle.on('close', () => resolve()))
  idle.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n')
  await until(async () => answer, (a) => a.includes('\r\n\r\n'), 60_000, 'the answer on the kept-alive connection')
  t.match(answer, /^HTTP\/1\.1 200/)
  lb.proc.kill('SIGTERM')
  // a primary that waited for its handed-off connections to close before telling the processes to
  // drain would sit here until the 65 s idle limit; the drain closes the idle connection at once
  const exit = await Promise.race([lb.exited, new Promise<'waiting'>((resolve) => setTimeout(resolve, 40_000, 'waiting').unref())])
  t.equal(exit, 0, 'claylb exited 0 (well before the 65 s idle limit)')
  await closedByClaylb
  t.pass('the idle connection was closed by the drain')
})
