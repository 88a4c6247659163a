import t from 'tap'
import { startClaylb } from '../helpers/claylb.js'
import { req } from '../helpers/http.js'
import { scrape, value } from '../helpers/metrics.js'
import { status, until } from '../workers/load.js'

function kill (pid: number, signal: NodeJS.Signals): void {
  try { process.kill(pid, signal) } catch { /* already gone */ }
}

t.test('/metrics answers quickly while a worker is SIGSTOPped, and the stopped worker is recycled', async (t) => {
  const lb = await startClaylb({
    config: {
      workers: { count: 2, drainTimeoutMs: 1000 },
      healthCheck: { intervalMs: 300, timeoutMs: 300, unhealthyThreshold: 2 },
      log: { access: false },
    },
    waitReady: true,
  })
  t.teardown(() => lb.stop())
  for (let i = 0; i < 10; i++) t.equal((await req(`${lb.url}/`)).status, 200)
  // every worker pushes its process sample over IPC every 2 s
  await until(() => scrape(lb.admin), (s) => s.samples.filter((x) => x.name === 'claylb_worker_process_resident_memory_bytes').length === 2, 8000, 'both workers reporting')
  const victim = (await status(lb.admin)).workers.find((w) => w.slot === 1)!
  kill(victim.pid, 'SIGSTOP')
  t.teardown(() => kill(victim.pid, 'SIGKILL'))

  const times: number[] = []
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now()
    const s = await scrape(lb.admin)
    times.push(performance.now() - t0)
    t.equal(s.samples.filter((x) => x.name === 'claylb_worker_process_resident_memory_bytes').length, 2, 'both workers still reported (their last sample)')
  }
  times.sort((a, b) => a - b)
  // a scrape that waited on the stopped worker would never answer; the margin is for this shared
  // machine, where the median varies with its load (a warm scrape is ~2-6 ms of CPU in-process)
  t.ok(times[0]! < 100, `scrapes with a worker stopped: ${times.map((x) => x.toFixed(1)).join(', ')} ms (the fastest under 100 ms)`)
  t.ok(times[4]! < 1000, 'every scrape answered within a second')

  // the stopped worker fails its health checks and is replaced rather than waited for
  const recycled = await lb.waitForLog((l) => l['msg'] === 'recycling an unhealthy worker' && l['worker'] === victim.id, 10_000)
  t.equal(recycled['reason'], 'health checks failed')
  await lb.waitForLog((l) => l['msg'] === 'worker recycled' && l['worker'] === victim.id, 15_000)
  const after = await status(lb.admin)
  const slot1 = after.workers.filter((w) => w.slot === 1)
  t.equal(slot1.length, 1)
  t.not(slot1[0]!.pid, victim.pid, 'slot 1 has a new process')
  for (let i = 0; i < 6; i++) t.equal((await req(`${lb.url}/`)).status, 200, 'served')
  const s = await scrape(lb.admin)
  t.ok(value(s, 'claylb_worker_recycles_total') >= 1, 'claylb_worker_recycles_total counts it')
  t.equal(value(s, 'claylb_generation'), 1)
  t.ok(value(s, 'claylb_requests_total', { upstream: 'worker-1' }) > 0, 'worker requests are labelled by slot')
  t.notOk(s.samples.some((x) => /^w\d+$/.test(x.labels['upstream'] ?? '')), 'no per-process upstream label')
})

t.test('a worker ejected by the outlier detector is recycled', async (t) => {
  const lb = await startClaylb({
    config: {
      workers: { count: 2, drainTimeoutMs: 1000 },
      outlier: { consecutiveFailures: 3 },
      log: { access: false },
    },
  })
  t.teardown(() => lb.stop())
  for (let i = 0; i < 6; i++) t.equal((await req(`${lb.url}/status/500`)).status, 500)
  const ejected = await lb.waitForLog((l) => l['msg'] === 'upstream ejected', 5000)
  const recycled = await lb.waitForLog((l) => l['msg'] === 'recycling an unhealthy worker', 5000)
  t.equal(recycled['worker'], ejected['upstream'])
  t.equal(recycled['reason'], 'ejected')
  await lb.waitForLog((l) => l['msg'] === 'worker recycled' && l['worker'] === ejected['upstream'], 15_000)
  t.ok((await status(lb.admin)).workers.every((w) => w.id !== ejected['upstream']), 'the ejected worker is gone')
})
