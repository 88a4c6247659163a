#!/usr/bin/env node
/**
 * Several full runs side by side (a shared machine is noisy: repeat, then read the medians and the
 * spread). Ratios are taken inside each run first, then their median across runs.
 * usage: node bench/compare-runs.mjs [--scenario plain-get] [FILE.json ...]   (default: bench/results/runs/*.json)
 */
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { median } from './lib/report.mjs'

const args = process.argv.slice(2)
const si = args.indexOf('--scenario')
const scenario = si >= 0 ? args.splice(si, 2)[1] : 'plain-get'
const dir = join(dirname(fileURLToPath(import.meta.url)), 'results', 'runs')
const files = args.length ? args : readdirSync(dir).filter((f) => f.endsWith('.json')).sort().map((f) => join(dir, f))
const runs = files.map((f) => JSON.parse(readFileSync(f, 'utf8'))).filter((r) => r.scenarios?.[scenario])
if (runs.length === 0) {
  process.stderr.write(`no full run with scenario ${scenario}\n`)
  process.exit(1)
}

const ids = [...new Set(runs.flatMap((r) => r.scenarios[scenario].rows.map((x) => x.id)))]
const cell = (run, id) => run.scenarios[scenario].rows.find((x) => x.id === id)
const f1 = (x) => Number.isFinite(x) ? x.toFixed(1) : '—'
const f2 = (x) => Number.isFinite(x) ? x.toFixed(2) : '—'

const head = `| proxy | ${runs.map((r) => `run ${r.startedAt.slice(11, 16)} UTC: µs/req (waited)`).join(' | ')} | median µs/req | median × nginx | median × minimal undici |`
const lines = [head, `| --- | ${runs.map(() => '---:').join(' | ')} | ---: | ---: | ---: |`]
for (const id of ids) {
  const cells = runs.map((r) => cell(r, id))
  const vsN = median(cells.map((c) => c?.vsNginx))
  const vsU = median(cells.map((c) => c?.vsUndiciMinimal))
  lines.push(`| ${id} | ${cells.map((c) => c ? `${f1(c.cpuUsPerReq)} (${Number.isFinite(c.runqWaitShare) ? Math.round(100 * c.runqWaitShare) + '%' : '?'})` : '—').join(' | ')} | ${f1(median(cells.map((c) => c?.cpuUsPerReq)))} | ${f2(vsN)} | ${f2(vsU)} |`)
}
process.stdout.write(`${scenario}: ${runs.length} full run(s); (waited) = share of the measured time the proxy's event loop was runnable but waiting for its CPU\n\n${lines.join('\n')}\n`)
