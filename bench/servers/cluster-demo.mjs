// node:cluster running claylb's bundled demo app (dist/app-side/demo/app.js), the baseline of the workers
// scenario: the primary accepts and hands connections round-robin to N workers (per connection, not per
// request), each worker serving the same app claylb's own workers run.
// usage: node cluster-demo.mjs PORT WORKERS
import cluster from 'node:cluster'
import http from 'node:http'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const ROOT = new URL('../../', import.meta.url)
const port = Number(process.argv[2])
const count = Number(process.argv[3] ?? 2)
cluster.schedulingPolicy = cluster.SCHED_RR

if (cluster.isPrimary) {
  for (let i = 0; i < count; i++) cluster.fork()
  process.on('SIGTERM', () => { for (const w of Object.values(cluster.workers)) w.process.kill('SIGTERM'); process.exit(0) })
} else {
  const { buildConfig } = await import(new URL('dist/shared/config/load.js', ROOT))
  const { createApp } = await import(new URL('dist/app-side/demo/app.js', ROOT))
  const quiet = { debug () {}, info () {}, warn () {}, error () {} }
  const id = `c${cluster.worker.id}`
  // the demo connects to Redis in the background; GET / (what the scenario asks) never waits for it
  const redis = () => new Promise(() => {})
  const handler = await createApp({ id, slot: cluster.worker.id, generation: 1, config: buildConfig({}), tmpdir: mkdtempSync(join(tmpdir(), 'cluster-demo-')), logger: quiet, redis })
  // the same header claylb's worker runtime adds
  http.createServer((req, res) => { res.setHeader('x-worker-id', id); handler(req, res) }).listen(port, '127.0.0.1')
  process.on('SIGTERM', () => process.exit(0))
}
