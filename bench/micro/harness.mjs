/**
 * Shared by the micro benchmarks: mitata for time per op, and an allocation count of our own that does
 * not depend on mitata's estimate. Run under `node --expose-gc --min-semi-space-size=64
 * --max-semi-space-size=64` (bench/micro/index.mjs does): with a 64 MB young generation, 10^7 calls of an
 * allocation-free function trigger no GC at all, while 8 bytes per call would trigger at least one.
 */
import { PerformanceObserver, performance } from 'node:perf_hooks'
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { bench, do_not_optimize, group, run, summary } from 'mitata'

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const dist = (p) => join(ROOT, 'dist', p)
export { bench, do_not_optimize, group, run, summary }

export function requireDist (p) {
  if (!existsSync(dist(p))) {
    process.stderr.write(`dist/${p} is missing: run \`npm run build\` first\n`)
    process.exit(1)
  }
  return import(dist(p))
}

async function gcCount (fn, n) {
  // entries arrive asynchronously: count only the GCs that started inside the loop's window
  let gcs = 0
  let t0 = Infinity
  let t1 = Infinity
  const obs = new PerformanceObserver((list) => { for (const e of list.getEntries()) if (e.startTime >= t0 && e.startTime <= t1) gcs++ })
  obs.observe({ entryTypes: ['gc'] })
  globalThis.gc?.()
  const h0 = process.memoryUsage().heapUsed
  t0 = performance.now()
  for (let i = 0; i < n; i++) do_not_optimize(fn())
  t1 = performance.now()
  const h1 = process.memoryUsage().heapUsed
  await new Promise((r) => setTimeout(r, 20))
  obs.disconnect()
  return { gcs, bytes: h1 - h0 }
}

/**
 * Bytes allocated per call (heap growth over 10^4 calls after warm-up, no GC in between) and the number
 * of GCs over `proofCalls` calls (0 is the proof of an allocation-free function).
 */
export async function allocations (fn, proofCalls = 1e7) {
  if (typeof globalThis.gc !== 'function') return { bytesPerOp: NaN, gcs: NaN, note: 'run with --expose-gc' }
  for (let i = 0; i < 1e5; i++) do_not_optimize(fn())
  // a window short enough to see no GC even for heavy allocators
  let n = 1e4
  let small = await gcCount(fn, n)
  while (small.gcs > 0 && n > 10) { n /= 10; small = await gcCount(fn, n) }
  const proof = await gcCount(fn, proofCalls)
  // the longer window, when it ran without a GC, gives the finer figure
  const bytesPerOp = proof.gcs === 0 ? proof.bytes / proofCalls : small.gcs === 0 ? small.bytes / n : NaN
  return { bytesPerOp: Math.max(0, bytesPerOp), gcs: proof.gcs, calls: proofCalls }
}

export async function reportAllocations (rows) {
  process.stdout.write('\nallocations (own count, --expose-gc, 64 MB young generation):\n')
  for (const [name, fn, calls] of rows) {
    const a = await allocations(fn, calls)
    process.stdout.write(`  ${name.padEnd(44)} ${Number.isFinite(a.bytesPerOp) ? a.bytesPerOp.toFixed(1).padStart(8) : '       ?'} bytes/op   ${String(a.gcs).padStart(4)} GCs in ${a.calls?.toExponential(0) ?? '?'} calls${a.note ? `  (${a.note})` : ''}\n`)
  }
}

// what a browser-ish client sends to an API behind a proxy (rawHeaders order and spelling)
export const BROWSER_HEADERS = [
  'Host', 'api.example.com',
  'User-Agent', 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36',
  'Accept', 'application/json, text/plain, */*',
  'Accept-Encoding', 'gzip, deflate, br',
  'Accept-Language', 'en-GB,en;q=0.9',
  'Connection', 'keep-alive',
  'Cookie', 'sid=s%3Aabc123.def456; theme=dark',
  'Referer', 'https://app.example.com/orders',
  'X-Request-Id', '4b9f7c1e-2f8a-4d9b-9a61-1c2d3e4f5a6b',
  'X-Forwarded-For', '203.0.113.7',
]
