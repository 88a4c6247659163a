#!/usr/bin/env node
/**
 * The top self-time functions of a V8 .cpuprofile (from `node --cpu-prof`), and the same time grouped by
 * where the code lives (claylb's dist/, undici, pino, node's http internals, GC, idle).
 * usage: node bench/profile-top.mjs FILE.cpuprofile [--top N]
 */
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

function where (url) {
  if (!url) return ''
  if (url.startsWith('node:')) return url
  const m = url.match(/node_modules\/((?:@[^/]+\/)?[^/]+)\/(.*)$/)
  if (m) return `${m[1]}/${m[2]}`
  const d = url.match(/\/(dist|bench|src)\/(.*)$/)
  return d ? `${d[1]}/${d[2]}` : url.replace(/^file:\/\//, '')
}

function group (fn, url) {
  if (fn === '(garbage collector)') return 'GC'
  if (fn === '(idle)') return 'idle'
  if (fn === '(program)') return 'V8/native (program)'
  if (!url) return 'native / builtins'
  const w = where(url)
  if (w.startsWith('dist/')) return 'claylb dist/'
  if (w.startsWith('bench/')) return 'bench proxy code'
  const pkg = w.match(/^((?:@[^/]+\/)?[^/]+)\//)
  if (!w.startsWith('node:') && pkg) return pkg[1]
  if (/^node:internal\/(http|_http|streams|stream)/.test(w) || /^node:_http/.test(w) || /^node:internal\/streams/.test(w)) return 'node http/streams'
  if (/^node:(net|internal\/net|internal\/stream_base)/.test(w)) return 'node net'
  if (/^node:(events|internal\/process\/task_queues|internal\/timers|timers)/.test(w)) return 'node events/ticks/timers'
  if (/^node:internal\/(modules|main)/.test(w)) return 'node module loading'
  return 'node other'
}

/** @returns {{ totalMs: number, busyMs: number, top: Array<{ name, where, selfMs, pct }>, groups: Array<{ group, selfMs, pct }> }} */
export function analyse (profile, topN = 25, window = null) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  // window: [fromUs, toUs] on the monotonic clock (V8's profile clock on Linux); keeps start-up and
  // warm-up out when the runner knows when it measured. Ignored when it would keep nothing.
  const self = tally(profile, window) ?? tally(profile, null)
  const parentOf = new Map()
  for (const n of profile.nodes) for (const c of n.children ?? []) parentOf.set(c, n.id)
  const fns = new Map()
  const callers = new Map()
  const groups = new Map()
  let total = 0
  let idle = 0
  for (const [id, us] of self) {
    const cf = byId.get(id).callFrame
    const name = cf.functionName || '(anonymous)'
    total += us
    if (name === '(idle)') { idle += us; continue }
    const key = `${name}\t${where(cf.url)}:${cf.lineNumber + 1}`
    fns.set(key, (fns.get(key) ?? 0) + us)
    // who calls it (JS frame above it), so a native hot spot like writev names its JS caller
    const p = byId.get(parentOf.get(id))
    if (p) {
      const ck = `${p.callFrame.functionName || '(anonymous)'} ${where(p.callFrame.url)}:${p.callFrame.lineNumber + 1}`
      const m = callers.get(key) ?? new Map()
      m.set(ck, (m.get(ck) ?? 0) + us)
      callers.set(key, m)
    }
    const g = group(name, cf.url)
    groups.set(g, (groups.get(g) ?? 0) + us)
  }
  const busy = total - idle
  const top = [...fns].sort((a, b) => b[1] - a[1]).slice(0, topN)
    .map(([key, us]) => {
      const [name, w] = key.split('\t')
      const from = [...(callers.get(key) ?? [])].sort((a, b) => b[1] - a[1])[0]?.[0] ?? ''
      return { name, where: w, selfMs: us / 1000, pct: 100 * us / busy, from }
    })
  const grouped = [...groups].sort((a, b) => b[1] - a[1]).map(([g, us]) => ({ group: g, selfMs: us / 1000, pct: 100 * us / busy }))
  return { totalMs: total / 1000, busyMs: busy / 1000, top, groups: grouped }
}

function tally (profile, window) {
  const self = new Map()
  let t = profile.startTime
  let kept = 0
  // timeDeltas[i] is the time before sample i; attribute it to that sample's node
  for (let i = 0; i < profile.samples.length; i++) {
    const d = profile.timeDeltas[i] ?? 0
    t += d
    if (window !== null && (t < window[0] || t > window[1])) continue
    kept++
    const id = profile.samples[i]
    self.set(id, (self.get(id) ?? 0) + d)
  }
  return kept > 0 ? self : null
}

/** requests: how many were served in the window, to show µs per request beside each group */
export function formatAnalysis (a, title = '', requests = 0) {
  const lines = []
  if (title) lines.push(title)
  const perReq = (ms) => requests > 0 ? `  ${(ms * 1000 / requests).toFixed(1).padStart(6)} µs/req` : ''
  lines.push(`busy ${a.busyMs.toFixed(0)} ms of ${a.totalMs.toFixed(0)} ms sampled (percentages are of busy time)${requests ? `; ${requests} requests: ${(a.busyMs * 1000 / requests).toFixed(1)} µs/req busy` : ''}`, '', 'self time by where the code lives:')
  for (const g of a.groups) lines.push(`  ${g.pct.toFixed(1).padStart(5)}%  ${g.selfMs.toFixed(0).padStart(6)} ms${perReq(g.selfMs)}  ${g.group}`)
  lines.push('', 'top functions by self time:')
  for (const t of a.top) lines.push(`  ${t.pct.toFixed(1).padStart(5)}%  ${t.selfMs.toFixed(0).padStart(6)} ms  ${t.name}  ${t.where}${t.from ? `   ← ${t.from}` : ''}`)
  return lines.join('\n') + '\n'
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const file = process.argv[2]
  if (!file) {
    process.stderr.write('usage: node bench/profile-top.mjs FILE.cpuprofile [--top N]\n')
    process.exit(2)
  }
  const i = process.argv.indexOf('--top')
  const n = i > 0 ? Number(process.argv[i + 1]) : 25
  process.stdout.write(formatAnalysis(analyse(JSON.parse(readFileSync(file, 'utf8')), n), file))
}
