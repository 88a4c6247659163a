/**
 * The idempotency scenario: the same 1 KB JSON POST on an idempotency route, unkeyed, keyed with a fresh
 * key per request (first executions), and keyed with one key (replays), against a private redis-server.
 * Redis round trips per request are counted with INFO commandstats (commands, an upper bound on round
 * trips: a pipelined pair counts 2). Budget: first execution ≤ 2, replay ≤ 1. Redis's own CPU per
 * request (utime+stime of redis-server from /proc over the measured window) tells the work inside those
 * commands (the Lua scripts), which a command count does not.
 */
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import net from 'node:net'
import { join } from 'node:path'
import { freePort, hasCommand, stopChild, treeCpuSeconds, waitPort } from './procs.mjs'
import { summarise } from './report.mjs'
import { ROOT, TARGETS } from './targets.mjs'

export function idempotencyPending () {
  if (!existsSync(join(ROOT, 'dist', 'idempotency'))) return 'pending: the idempotency layer (src/idempotency) is not on main yet'
  if (!hasCommand('redis-server')) return 'skipped: redis-server not installed (`apt-get install -y redis-server`)'
  return null
}

/** Connection housekeeping, not a request's work. */
const NOT_PER_REQUEST = new Set(['info', 'client', 'hello', 'command', 'select', 'auth', 'config', 'ping'])

/** One RESP command on a fresh socket; the raw reply text. */
function redisCommand (port, ...args) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1')
    let buf = ''
    s.setEncoding('utf8')
    s.on('data', (d) => {
      buf += d
      const m = buf.match(/^\$(\d+)\r\n/)
      if ((m && Buffer.byteLength(buf) >= m[0].length + Number(m[1]) + 2) || /^[+\-:]/.test(buf)) { s.end(); resolve(buf) }
    })
    s.on('error', reject)
    s.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`)
  })
}

export async function commandCounts (port) {
  const text = await redisCommand(port, 'INFO', 'commandstats')
  const counts = {}
  for (const m of text.matchAll(/cmdstat_([^:]+):calls=(\d+)/g)) if (!NOT_PER_REQUEST.has(m[1].split('|')[0])) counts[m[1]] = Number(m[2])
  return counts
}

function delta (a, b) {
  const d = {}
  let total = 0
  for (const [k, v] of Object.entries(b)) { const x = v - (a[k] ?? 0); if (x) { d[k] = x; total += x } }
  return { byCommand: d, total }
}

const BODY = JSON.stringify({ customer: 'c-42', currency: 'EUR', items: Array.from({ length: 12 }, (_, i) => ({ sku: `SKU-${1000 + i}`, qty: (i % 3) + 1, price: 19.99 + i })), note: 'x'.repeat(80) })

export async function runIdempotency (opts, tmp, log, { startBackends, measure }) {
  const redisPort = await freePort()
  const redis = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
  await waitPort(redisPort, redis)
  const backends = await startBackends(tmp)
  const claylbConfig = {
    redis: { url: `redis://127.0.0.1:${redisPort}` },
    idempotency: { routes: [{ match: 'POST /orders', required: false }] },
  }
  const base = { method: 'POST', body: BODY, headers: { 'content-type': 'application/json' } }
  const kinds = [
    { id: 'unkeyed', label: 'POST /orders without a key', request: base },
    { id: 'keyed-first', label: 'keyed POST, first execution (a fresh key each)', request: { ...base, uniqueKeyHeader: 'Idempotency-Key' } },
    { id: 'keyed-replay', label: 'keyed POST, replay (one key)', request: { ...base, headers: { ...base.headers, 'idempotency-key': `replay-${Date.now()}` } } },
  ]
  // with CLAYLB_BENCH_BEFORE, the same three beside it on the older claylb, interleaved
  const variants = []
  for (const [id, who] of [['claylb-nolog', 'claylb'], ['claylb-before-nolog', 'claylb BEFORE']]) {
    const target = TARGETS.find((t) => t.id === id)
    if (target === undefined) continue
    for (const k of kinds) variants.push({ id: id === 'claylb-nolog' ? k.id : `before-${k.id}`, label: `${who}, ${k.label}`, request: k.request, target })
  }
  const rows = variants.map((v) => ({ id: v.id, label: v.label, version: v.target.version(), samples: [] }))
  try {
    for (let rep = 0; rep < opts.reps; rep++) {
      for (let i = 0; i < variants.length; i++) {
        const v = variants[i]
        const scenario = { path: '/orders', request: v.request }
        // commands counted over the measured run only (the warm-up also creates the replayed record)
        const around = {
          before: async () => ({ counts: await commandCounts(redisPort), cpu: treeCpuSeconds(redis.pid) }),
          after: async (b) => ({ ...delta(b.counts, await commandCounts(redisPort)), cpu: treeCpuSeconds(redis.pid) - b.cpu }),
        }
        const claylb = v.target
        const s = await measure({ ...claylb, start: (ctx) => claylb.start({ ...ctx, claylbConfig }) }, scenario, opts, { tmp, upstreams: backends.urls, around })
        const d = s.extra
        s.redisCommands = d.byCommand
        s.redisPerRequest = d.total / s.requests
        s.redisCpuUsPerReq = d.cpu * 1e6 / s.requests
        rows[i].samples.push(s)
        log(`  [${rep + 1}/${opts.reps}] ${v.id.padEnd(20)} ${s.cpuUsPerReq.toFixed(1).padStart(7)} µs/req  ${Math.round(s.rps)} req/s  redis ${s.redisPerRequest.toFixed(2)} cmds/req ${s.redisCpuUsPerReq.toFixed(1)} µs/req ${JSON.stringify(d.byCommand)}`)
      }
    }
  } finally {
    await backends.stop()
    await stopChild(redis)
  }
  const out = summarise(rows)
  for (const r of out) {
    r.redisPerRequest = Math.max(...r.samples.map((s) => s.redisPerRequest))
    const cpu = r.samples.map((s) => s.redisCpuUsPerReq).sort((a, b) => a - b)
    r.redisCpuUsPerReq = cpu[cpu.length >> 1]
  }
  return out
}

