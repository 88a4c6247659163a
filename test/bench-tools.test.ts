/**
 * The measuring instruments of bench/: CPU time of a process tree from /proc, the summary and its
 * ratios, the SVG chart, and the CPU-profile reader. (The benchmarks themselves are not run here.)
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { childEnv } from './helpers/claylb.js'

// bench/ is plain JavaScript: its modules are untyped here
type AnyModule = any
const load = async (p: string): Promise<AnyModule> => await import(String(new URL(p, import.meta.url))) as AnyModule

t.test('treeCpuSeconds counts the CPU of a grandchild', { skip: process.platform !== 'linux' && 'reads /proc' }, async (t) => {
  const { treeCpuSeconds } = await load('../bench/lib/procs.mjs')
  // child → grandchild; the grandchild burns ~0.6 s of CPU, then idles until killed
  const burn = 'const end = Date.now() + 600; while (Date.now() < end); setTimeout(() => {}, 20000)'
  const parent = spawn(process.execPath, ['-e', `
    const { spawn } = require('node:child_process')
    const g = spawn(process.execPath, ['-e', ${JSON.stringify(burn)}], { stdio: 'ignore' })
    process.on('SIGTERM', () => { g.kill('SIGKILL'); process.exit(0) })
    setTimeout(() => {}, 20000)
  `], { stdio: 'ignore', env: childEnv() })
  t.teardown(() => { parent.kill('SIGTERM') })
  // wait (bounded) until the tree has used at least 0.3 s: the parent alone idles near 0.05 s
  let cpu = 0
  for (let i = 0; i < 100 && cpu < 0.3; i++) {
    await new Promise((r) => setTimeout(r, 100))
    cpu = treeCpuSeconds(parent.pid)
  }
  t.ok(cpu >= 0.3, `tree CPU ${cpu} s includes the grandchild's busy loop`)
  t.equal(treeCpuSeconds(999_999_999), 0, 'an unknown pid has no tree')
})

t.test('summarise: medians, spread and ratios inside one run', async (t) => {
  const { summarise, median, markdownTable, textTable } = await load('../bench/lib/report.mjs')
  t.equal(median([3, 1, 2]), 2)
  t.equal(median([4, 1, 3, 2]), 2.5)
  t.ok(Number.isNaN(median([])))
  const s = (cpu: number, rps: number) => ({ cpuUsPerReq: cpu, rps, p50Ms: 1, p99Ms: 2, errors: 0, requests: 100, proxyCpuShare: 0.5, runqWaitShare: 0.1 })
  const rows = summarise([
    { id: 'direct', label: 'direct', samples: [s(20, 1000), s(22, 1000), s(21, 1000)] },
    { id: 'nginx', label: 'nginx', samples: [s(30, 900), s(10, 900), s(20, 900)] },
    { id: 'undici-minimal', label: 'undici', samples: [s(40, 500), s(40, 500), s(40, 500)] },
    { id: 'claylb', label: 'claylb <x>', samples: [s(60, 400), s(50, 400), s(55, 400)] },
  ])
  const claylb = rows.find((r: AnyModule) => r.id === 'claylb')
  t.equal(claylb.cpuUsPerReq, 55)
  t.equal(claylb.cpuMin, 50)
  t.equal(claylb.cpuMax, 60)
  t.equal(claylb.vsNginx, 55 / 20)
  t.equal(claylb.vsUndiciMinimal, 55 / 40)
  t.equal(claylb.rpsVsDirect, 0.4)
  t.equal(rows.find((r: AnyModule) => r.id === 'direct').rpsVsDirect, null)
  t.match(markdownTable(rows), /\| claylb <x> \| 55\.0 \(50\.0–60\.0\) \| 2\.75 \| 1\.38 \|/)
  t.match(textTable(rows), /claylb\s+55\.0/)
})

t.test('svgChart: one bar per row, labels escaped, the 1.5× nginx goal drawn', async (t) => {
  const { summarise, svgChart } = await load('../bench/lib/report.mjs')
  const s = (cpu: number) => ({ cpuUsPerReq: cpu, rps: 1, p50Ms: 1, p99Ms: 1, errors: 0, requests: 1, proxyCpuShare: 1, runqWaitShare: 0 })
  const rows = summarise([
    { id: 'nginx', label: 'nginx', samples: [s(20)] },
    { id: 'claylb', label: 'claylb', short: 'claylb <&>', samples: [s(50)] },
  ])
  const svg: string = svgChart(rows, 'title & more', 'sub')
  t.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/)
  t.equal((svg.match(/<rect x="\d+" y=/g) ?? []).length, 2, 'two bars')
  t.match(svg, /claylb &lt;&amp;&gt;/)
  t.match(svg, /title &amp; more/)
  t.match(svg, /goal: 1\.5× nginx/)
  t.notMatch(svg, /NaN/)
})

t.test('profile analysis: self time per function and group, callers, measured window', async (t) => {
  const { analyse, formatAnalysis } = await load('../bench/profile-top.mjs')
  const frame = (functionName: string, url = '', lineNumber = 0) => ({ functionName, url, lineNumber, scriptId: '0', columnNumber: 0 })
  const profile = {
    startTime: 1_000,
    endTime: 2_000,
    nodes: [
      { id: 1, callFrame: frame('(root)'), children: [2, 4, 5] },
      { id: 2, callFrame: frame('onHeaders', 'file:///x/dist/proxy/exchange.js', 86), children: [3] },
      { id: 3, callFrame: frame('writev'), children: [] },
      { id: 4, callFrame: frame('(idle)'), children: [] },
      { id: 5, callFrame: frame('_resume', 'file:///x/node_modules/undici/lib/dispatcher/client.js', 588), children: [] },
    ],
    // deltas are the time before each sample; cumulative times: 1100, 1200, 1500, 1600, 1700
    samples: [2, 3, 3, 5, 4],
    timeDeltas: [100, 100, 300, 100, 100],
  }
  const all = analyse(profile, 10)
  t.equal(all.totalMs, 0.7)
  t.equal(all.busyMs, 0.6, 'idle is not busy')
  t.same(all.top.map((x: AnyModule) => [x.name, x.selfMs]), [['writev', 0.4], ['onHeaders', 0.1], ['_resume', 0.1]])
  t.match(all.top[0].from, /^onHeaders dist\/proxy\/exchange\.js:87/)
  t.same(Object.fromEntries(all.groups.map((g: AnyModule) => [g.group, g.selfMs])), { 'native / builtins': 0.4, 'claylb dist/': 0.1, undici: 0.1 })
  const windowed = analyse(profile, 10, [1150, 1550])
  t.equal(windowed.busyMs, 0.4, 'only the samples inside the window')
  t.same(analyse(profile, 10, [5000, 6000]).busyMs, all.busyMs, 'a window that keeps nothing falls back to all')
  t.match(formatAnalysis(all, 'T', 2), /busy 1 ms of 1 ms sampled .*; 2 requests: 300\.0 µs\/req busy/)
})
