#!/usr/bin/env node
/**
 * `npm run bench` — the macro benchmark of claylb's hot path beside its baselines, measured in one run.
 *   npm run bench                      quick: ~4 s per target and scenario, one repetition, prints a table
 *   npm run bench -- --full            the full matrix: 3 s warm-up, 10 s measured, median of 3
 *   npm run bench -- --profile         a --cpu-prof of claylb (and the minimal undici proxy) under plain GET
 *   npm run bench -- --micro           the micro benchmarks (bench/micro/*.mjs)
 * More: --scenario plain-get,post-1mb  --targets claylb,nginx  --reps N  --seconds N  --warmup N  --connections N
 *
 * A fresh clone needs nothing more than `npm ci`: bench/'s own dependencies (autocannon, mitata,
 * http-proxy) are installed here on first use with `npm --prefix bench ci`, and dist/ is built if missing.
 */
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const BENCH = dirname(fileURLToPath(import.meta.url))
const ROOT = join(BENCH, '..')

function step (what, cmd, args, cwd) {
  process.stdout.write(`${what}: ${cmd} ${args.join(' ')}\n`)
  const r = spawnSync(cmd, args, { cwd, stdio: 'inherit' })
  if (r.status !== 0) {
    process.stderr.write(`${what} failed (exit ${r.status})\n`)
    process.exit(1)
  }
}

if (!existsSync(join(BENCH, 'node_modules', 'mitata')) || !existsSync(join(BENCH, 'node_modules', 'autocannon')) || !existsSync(join(BENCH, 'node_modules', 'http-proxy'))) {
  step('installing bench/ dependencies (once)', 'npm', ['--prefix', BENCH, 'ci', '--no-audit', '--no-fund'], ROOT)
}
if (!existsSync(join(ROOT, 'dist', 'cli.js'))) step('building claylb', 'npm', ['run', 'build'], ROOT)

const { main } = await import('./lib/macro.mjs')
process.exitCode = await main(process.argv.slice(2))
