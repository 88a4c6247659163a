/**
 * The macro runner: N minimal backends, then each target in turn in front of them (pinned alone on the
 * proxy's CPU), warm-up, a measured run, and the target's CPU time per request from /proc. Repetitions
 * interleave the targets, so a burst of noise from the shared machine hits one sample, not one row.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, release, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { spawnSync } from 'node:child_process'
import { driverName, runLoad } from './load.mjs'
import { freePort, hasCommand, pinning, pinSelf, setBoost, spawnPinned, stopChild, treeCpuSeconds, treeRunqWaitMs, waitPort } from './procs.mjs'
import { markdownTable, summarise, svgChart, textTable } from './report.mjs'
import { LIMIT_TARGETS, nginxPrelude, PROCESS_TARGETS, ROOT, TARGETS, TLS_TARGETS, WORKER_COUNT, WORKER_TARGETS } from './targets.mjs'
import { analyse, formatAnalysis } from '../profile-top.mjs'
import { idempotencyPending, runIdempotency } from './idempotency.mjs'

const BENCH = join(ROOT, 'bench')
const RESULTS = join(BENCH, 'results')
const BACKENDS = 2

export const SCENARIOS = {
  'plain-get': { title: 'plain GET', path: '/', request: {} },
  'post-1mb': { title: '1 MB POST', path: '/upload', request: { method: 'POST', bodyBytes: 1 << 20, headers: { 'content-type': 'application/octet-stream' } } },
  workers: {
    title: `claylb --workers ${WORKER_COUNT} vs node:cluster (demo app, GET /)`,
    path: '/',
    request: {},
    targets: WORKER_TARGETS,
    backends: 0,
    redis: true,
    pending: () => existsSync(join(ROOT, 'dist', 'workers')) ? null : 'pending: the workers feature (--workers N, builtin:demo) is not on main yet',
  },
  processes: { title: 'claylb --processes 1 vs 2, nginx 1 vs 2 workers (plain GET, unpinned, nginx `return 200` backends)', path: '/', request: {}, targets: PROCESS_TARGETS, nginxBackends: true },
  idempotency: { title: 'keyed POST (first execution, replay) vs unkeyed', pending: idempotencyPending, run: runIdempotency },
  'rate-limits': { title: 'plain GET with no rate limit, with 10 (one matching: local, then global on Redis)', path: '/', request: {}, targets: LIMIT_TARGETS, redis: true },
  'tls-get': { title: 'plain GET over TLS (keep-alive; TLS to the client, HTTP to the backends)', path: '/', request: {}, targets: TLS_TARGETS, tls: true },
  // wrk opens a new connection after every answer that closes its own: accept, a parser, a peer address
  // and the close are paid per request (issue 29)
  'new-conn': { title: 'plain GET, a new connection per request (`Connection: close`)', path: '/', request: { headers: { connection: 'close' } } },
  'tls-new-conn': { title: 'GET over TLS, a new connection and a full TLS handshake per request (`Connection: close`)', path: '/', request: { headers: { connection: 'close' } }, targets: TLS_TARGETS, tls: true },
}

/** A self-signed certificate for the TLS scenario (openssl CLI), its key, and both in one file (HAProxy's crt). */
function makeCertificate (tmp) {
  const dir = join(tmp, 'tls')
  mkdirSync(dir, { recursive: true })
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'key.pem', '-out', 'cert.pem',
    '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { cwd: dir, encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`the TLS scenario needs the openssl CLI (apt-get install -y openssl): ${r.error?.message ?? r.stderr}`)
  const cert = join(dir, 'cert.pem')
  const key = join(dir, 'key.pem')
  const combined = join(dir, 'combined.pem')
  writeFileSync(combined, readFileSync(cert, 'utf8') + readFileSync(key, 'utf8'))
  return { cert, key, combined }
}

function machine () {
  const c = cpus()
  return {
    cpu: c[0]?.model ?? 'unknown',
    cores: c.length,
    kernel: release(),
    node: process.version,
    os: (() => { try { return readFileSync('/etc/os-release', 'utf8').match(/PRETTY_NAME="([^"]+)"/)?.[1] } catch { return undefined } })(),
  }
}

async function startBackends (tmp, n = BACKENDS) {
  const ports = []
  const procs = []
  for (let i = 0; i < n; i++) {
    const port = await freePort()
    const child = spawnPinned('rest', process.execPath, [join(BENCH, 'servers', 'backend.mjs'), String(port), `b${i}`], { logFile: join(tmp, `backend-${i}.log`) })
    await waitPort(port, child)
    ports.push(port)
    procs.push(child)
  }
  return { urls: ports.map((p) => `http://127.0.0.1:${p}`), stop: () => Promise.all(procs.map((c) => stopChild(c))) }
}

/**
 * The same backends served by one nginx worker (`return 200` of the same 17-byte JSON), on CPU 0: a
 * backend that costs a few µs per request, so the proxy under test, not its backends, is what runs out
 * of CPU (the processes scenario, where req/s must show whether a second proxy process helps).
 */
async function startNginxBackends (tmp, n = BACKENDS) {
  const dir = join(tmp, 'nginx-backends')
  mkdirSync(dir, { recursive: true })
  const ports = []
  for (let i = 0; i < n; i++) ports.push(await freePort())
  const conf = join(dir, 'nginx.conf')
  writeFileSync(conf, `${nginxPrelude(dir, 1)}
  keepalive_requests 1000000;
  keepalive_timeout 65s;
  default_type application/json;
${ports.map((p, i) => `  server { listen 127.0.0.1:${p}; location / { return 200 '{"ok":true,"backend":"b${i}"}'; } }`).join('\n')}
}
`)
  const child = spawnPinned('rest', 'nginx', ['-p', dir, '-c', conf, '-e', join(dir, 'error.log')], { logFile: join(tmp, 'nginx-backends.log') })
  for (const p of ports) await waitPort(p, child)
  return { urls: ports.map((p) => `http://127.0.0.1:${p}`), stop: () => stopChild(child) }
}

/** One proxy run: start, check it answers, warm up, measure, stop. */
/** A private redis-server on a free port (never the machine's own), for scenarios that need state. */
async function startRedis () {
  const port = await freePort()
  const child = spawnPinned('rest', 'redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {})
  await waitPort(port, child)
  return { url: `redis://127.0.0.1:${port}`, port, stop: () => stopChild(child) }
}

async function measure (target, scenario, opts, ctxBase) {
  const port = await freePort()
  const ctx = { ...ctxBase, id: target.id, port, adminPort: await freePort() }
  const child = target.start(ctx)
  try {
    await waitPort(port, child)
    if (target.ready) await target.ready(ctx)
    const url = `${target.tls ? 'https' : 'http'}://127.0.0.1:${port}${scenario.path}`
    const load = { url, connections: opts.connections, request: scenario.request, tmp: ctx.tmp }
    await runLoad({ ...load, seconds: opts.warmup })
    const mark = await ctxBase.around?.before()
    const fromUs = Number(process.hrtime.bigint() / 1000n)
    const cpu0 = treeCpuSeconds(child.pid)
    const wait0 = treeRunqWaitMs(child.pid)
    const la0 = loadavg()[0]
    const r = await runLoad({ ...load, seconds: opts.seconds })
    const cpu1 = treeCpuSeconds(child.pid)
    const wait1 = treeRunqWaitMs(child.pid)
    r.windowUs = [fromUs, Number(process.hrtime.bigint() / 1000n)]
    if (ctxBase.around) r.extra = await ctxBase.around.after(mark)
    const cpu = cpu1 - cpu0
    return {
      ...r,
      cpuSeconds: cpu,
      cpuUsPerReq: r.requests > 0 ? (cpu * 1e6) / r.requests : NaN,
      proxyCpuShare: cpu / r.seconds,
      // share of the measured time the target was runnable but waited for its CPU (other work on it)
      runqWaitShare: (wait1 - wait0) / 1000 / r.seconds,
      loadavg1: Math.round(((la0 + loadavg()[0]) / 2) * 100) / 100,
    }
  } finally {
    await stopChild(child)
  }
}

function availableTargets (all, only, log) {
  const list = []
  for (const t of all) {
    if (only && !only.includes(t.id)) continue
    const why = t.missing()
    if (why) { log(`  skipped ${t.id}: ${why}`); continue }
    list.push(t)
  }
  return list
}

async function runScenario (name, opts, tmp, log) {
  const scenario = SCENARIOS[name]
  log(`\n== ${name}: ${scenario.title} (${opts.connections} connections, ${opts.warmup} s warm-up, ${opts.seconds} s measured, ${opts.reps} repetition${opts.reps > 1 ? 's' : ''})`)
  const targets = availableTargets(scenario.targets ?? TARGETS, scenario.targets ? null : opts.targets, log)
  const nginxBackends = scenario.nginxBackends && hasCommand('nginx')
  if (scenario.nginxBackends && !nginxBackends) log('  (nginx not installed: node:http backends instead, which leave the proxy less CPU; `apt-get install -y nginx`)')
  const backends = nginxBackends ? await startNginxBackends(tmp, scenario.backends ?? BACKENDS) : await startBackends(tmp, scenario.backends ?? BACKENDS)
  const redis = scenario.redis ? await startRedis() : null
  const tls = scenario.tls ? makeCertificate(tmp) : undefined
  const rows = targets.map((t) => ({ id: t.id, label: t.label, short: t.short, version: t.version(), samples: [] }))
  try {
    for (let rep = 0; rep < opts.reps; rep++) {
      for (let i = 0; i < targets.length; i++) {
        const t = targets[i]
        const upstreams = t.direct ? [] : backends.urls
        try {
          const s = await measure(t, scenario, opts, { tmp, upstreams, redisUrl: redis?.url, tls })
          rows[i].samples.push(s)
          log(`  [${rep + 1}/${opts.reps}] ${t.id.padEnd(16)} ${s.cpuUsPerReq.toFixed(1).padStart(7)} µs/req  ${Math.round(s.rps).toString().padStart(6)} req/s  p99 ${s.p99Ms.toFixed(2)} ms  cpu ${(100 * s.proxyCpuShare).toFixed(0)}%  waited ${(100 * s.runqWaitShare).toFixed(0)}%  load ${s.loadavg1}${s.errors ? `  errors ${s.errors}` : ''}`)
        } catch (err) {
          log(`  [${rep + 1}/${opts.reps}] ${t.id}: FAILED ${err.message}`)
        }
      }
    }
  } finally {
    await backends.stop()
    await redis?.stop()
  }
  return summarise(rows.filter((r) => r.samples.length > 0))
}

async function runProfile (opts, tmp, log) {
  const scenario = SCENARIOS['plain-get']
  const dir = join(RESULTS, 'profile')
  rmSync(dir, { recursive: true, force: true })
  const backends = await startBackends(tmp)
  const out = {}
  try {
    for (const t of TARGETS.filter((x) => ['claylb-nolog', 'claylb', 'undici-minimal'].includes(x.id))) {
      const profDir = join(dir, t.id)
      mkdirSync(profDir, { recursive: true })
      const s = await measure(t, scenario, opts, { tmp, upstreams: backends.urls, cpuProfDir: profDir })
      const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'))
      if (!file) { log(`  ${t.id}: no .cpuprofile written`); continue }
      const a = analyse(JSON.parse(readFileSync(join(profDir, file), 'utf8')), opts.top, s.windowUs)
      const text = formatAnalysis(a, `${t.label}: plain GET, ${opts.connections} connections, the ${opts.seconds} s measured under --cpu-prof (${Math.round(s.rps)} req/s while profiled, ${s.cpuUsPerReq.toFixed(1)} µs/req with the profiler's own cost)`, s.requests)
      writeFileSync(join(RESULTS, `profile-${t.id}.txt`), text)
      log('\n' + text)
      out[t.id] = { requests: s.requests, ...a }
    }
  } finally {
    await backends.stop()
  }
  return out
}

function versions () {
  const v = {}
  for (const t of TARGETS) if (!t.missing()) v[t.id] = t.version()
  v.load = driverName === 'wrk' ? (spawnSync('wrk', ['-v'], { encoding: 'utf8' }).stdout.match(/wrk [^\s]+/)?.[0] ?? 'wrk') : 'autocannon'
  return v
}

export async function main (argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      full: { type: 'boolean', default: false },
      profile: { type: 'boolean', default: false },
      micro: { type: 'boolean', default: false },
      scenario: { type: 'string' },
      targets: { type: 'string' },
      reps: { type: 'string' },
      seconds: { type: 'string' },
      warmup: { type: 'string' },
      connections: { type: 'string', default: '32' },
      top: { type: 'string', default: '25' },
      nice: { type: 'string', default: '0' },
    },
    strict: true,
  })
  if (values.micro) {
    const r = spawnSync(process.execPath, ['--expose-gc', join(BENCH, 'micro', 'index.mjs')], { stdio: 'inherit' })
    return r.status ?? 1
  }
  const mode = values.full ? 'full' : 'quick'
  const opts = {
    connections: Number(values.connections),
    reps: Number(values.reps ?? (values.full ? 3 : 1)),
    seconds: Number(values.seconds ?? (values.full ? 10 : 3)),
    warmup: Number(values.warmup ?? (values.full ? 3 : 1)),
    targets: values.targets?.split(','),
    top: Number(values.top),
  }
  pinSelf()
  const boost = Number(values.nice) > 0 ? setBoost(Number(values.nice)) : 0
  if (Number(values.nice) > 0 && !boost) process.stdout.write('--nice needs root: running without a priority boost\n')
  opts.nice = boost
  const log = (s) => process.stdout.write(s + '\n')
  const tmp = mkdtempSync(join(tmpdir(), 'claylb-bench-'))
  mkdirSync(RESULTS, { recursive: true })
  const m = machine()
  log(`claylb bench (${mode}) on ${m.cpu}, ${m.cores} cores, ${m.os ?? ''} ${m.kernel}, node ${m.node}; load: ${driverName}; ${boost ? `nice -${boost}; ` : ''}${pinning.usable ? `proxy pinned on CPU ${pinning.proxyCpu}, load and backends on CPU ${pinning.restCpu}` : pinning.why}`)
  if (driverName !== 'wrk') log('  (wrk not installed: using autocannon, which shares CPU 0 with the backends; `apt-get install -y wrk` for the figures of the README)')

  try {
    if (values.profile) {
      const profile = await runProfile({ ...opts, seconds: Number(values.seconds ?? 10), warmup: Number(values.warmup ?? 2) }, tmp, log)
      writeFileSync(join(RESULTS, 'profile.json'), JSON.stringify({ startedAt: new Date().toISOString(), machine: m, profile }, null, 2))
      return 0
    }
    const names = values.scenario ? values.scenario.split(',') : Object.keys(SCENARIOS)
    const result = { mode, startedAt: new Date().toISOString(), machine: m, pinning, driver: driverName, versions: versions(), options: opts, scenarios: {}, pending: {} }
    for (const name of names) {
      const sc = SCENARIOS[name]
      if (!sc) { log(`unknown scenario ${name}; known: ${Object.keys(SCENARIOS).join(', ')}`); return 2 }
      const pending = sc.pending?.()
      if (pending) { log(`\n== ${name}: ${pending}`); result.pending[name] = pending; continue }
      const rows = sc.run ? await sc.run(opts, tmp, log, { startBackends, measure }) : await runScenario(name, opts, tmp, log)
      result.scenarios[name] = { title: sc.title, rows }
      log('\n' + textTable(rows))
      const loads = rows.flatMap((r) => r.samples.map((x) => x.loadavg1))
      const subtitle = `${opts.connections} connections, ${opts.seconds} s × ${opts.reps}, ${m.cpu} (${m.cores} cores), node ${m.node}, ${driverName}; ${result.startedAt.slice(0, 16).replace('T', ' ')} UTC, load ${Math.min(...loads).toFixed(0)}–${Math.max(...loads).toFixed(0)}`
      writeFileSync(join(RESULTS, `${mode}-${name}.svg`), svgChart(rows, `CPU per request — ${sc.title}`, subtitle))
    }
    result.finishedAt = new Date().toISOString()
    writeFileSync(join(RESULTS, `${mode}.json`), JSON.stringify(result, null, 2))
    // every full run is kept, so repeated runs on a noisy machine can be compared
    if (mode === 'full') {
      mkdirSync(join(RESULTS, 'runs'), { recursive: true })
      writeFileSync(join(RESULTS, 'runs', `full-${result.startedAt.replace(/[:.]/g, '-')}.json`), JSON.stringify(result, null, 2))
    }
    for (const [n, sc] of Object.entries(result.scenarios)) {
      writeFileSync(join(RESULTS, `${mode}-${n}.md`), `### ${sc.title} (${result.startedAt})\n\n${markdownTable(sc.rows)}\n`)
    }
    log(`\nresults: bench/results/${mode}.json, ${mode}-<scenario>.md and ${mode}-<scenario>.svg`)
    return 0
  } finally {
    rmSync(tmp, { recursive: true, force: true })
  }
}
