// Runs every micro benchmark in its own process (a fresh isolate each), with the flags the allocation
// counts need. `npm run bench -- --micro` or `node bench/micro/index.mjs [name...]`.
import { spawnSync } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const FILES = ['pick', 'routes', 'policy', 'engine-head', 'idempotency-route', 'metrics', 'fingerprint', 'compression', 'access-log']
const only = process.argv.slice(2)
let failed = 0
for (const f of FILES) {
  if (only.length && !only.includes(f)) continue
  process.stdout.write(`\n### micro/${f}.mjs\n`)
  const r = spawnSync(process.execPath, ['--expose-gc', '--min-semi-space-size=64', '--max-semi-space-size=64', join(here, `${f}.mjs`)], { stdio: 'inherit', env: { ...process.env, NODE_OPTIONS: '' } })
  if (r.status !== 0) failed++
}
process.exitCode = failed ? 1 : 0
