/**
 * A worker's drain with a proxy process that is slow to answer the primary (SIGSTOP stands in for a
 * long GC or a starved core). The drain reads what every process sent the worker at the instant it
 * stops routing there, so it must wait for that process's acknowledgement and fresh counters, never
 * go on with its old ones: the worker's own count then equals what the proxy says it sent.
 * The primary used to give up on an answer after 2 s and count with the process's last counters.
 */
import t from 'tap'
import { startClaylb } from '../helpers/claylb.js'
import { json, req } from '../helpers/http.js'

interface Status { processes: Array<{ pid: number }>, workers: Array<{ id: string, state: string }> }
const status = (admin: string): Promise<Status> => json<Status>(`${admin}/status`)

t.test('a worker drain waits for a stopped proxy process, then counts exactly what every process sent', async (t) => {
  const lb = await startClaylb({ args: ['--processes', '2', '--workers', '2'], config: { log: { access: false } }, waitReady: true })
  let stoppedPid = 0
  t.teardown(async () => {
    if (stoppedPid !== 0) try { process.kill(stoppedPid, 'SIGCONT') } catch {}
    await lb.stop('SIGKILL')
  })
  await lb.waitForLog((l) => l['msg'] === 'proxy process listening' && l['process'] === 2, 60_000)
  const first = await status(lb.admin)
  t.equal(first.processes.length, 2)
  // fresh connections: both processes send requests to both workers, and the primary has not read
  // their counters since (the /status above came first)
  for (let i = 0; i < 40; i++) t.equal((await req(`${lb.url}/`, { headers: { connection: 'close' } })).status, 200)
  const victim = first.workers[0]!.id
  const slow = first.processes[1]!.pid
  process.kill(slow, 'SIGSTOP')
  stoppedPid = slow
  t.equal((await req(`${lb.admin}/workers/${victim}/recycle`, { method: 'POST' })).status, 202)
  await lb.waitForLog((l) => l['msg'] === 'worker ready' && !first.workers.some((w) => w.id === l['worker']), 60_000)
  // the old primary gave up on the stopped process after 2 s per question, four questions in all
  const early = await lb.waitForLog((l) => l['msg'] === 'worker stopped' && l['worker'] === victim, 12_000).catch(() => null)
  t.equal(early, null, `${victim} is not stopped while a proxy process that may route to it has not acknowledged`)
  process.kill(slow, 'SIGCONT')
  stoppedPid = 0
  const stopped = await lb.waitForLog((l) => l['msg'] === 'worker stopped' && l['worker'] === victim, 60_000)
  t.equal(stopped['exit'], 'exit code 0', 'it exited by itself after its drain')
  t.ok(Number(stopped['requests']) > 0, `it served requests (${String(stopped['requests'])})`)
  t.equal(stopped['requests'], stopped['dispatchedAtDrain'], `its own count ${String(stopped['requests'])} = what the processes had sent it when it was told to drain`)
  t.equal(stopped['dispatched'], stopped['dispatchedAtDrain'], 'and nothing after')
  t.notOk(lb.logs.some((l) => typeof l['msg'] === 'string' && l['msg'].includes('in time')), 'no answer was given up on')
})
