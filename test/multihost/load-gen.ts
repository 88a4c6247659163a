/**
 * The load generator host's program (run in its own network namespace by multi-host.test.ts): the
 * chaos suite's mixed load (GETs, session increments, keyed POST /orders) spread over every claylb
 * host, until "stop" arrives on stdin. Prints one JSON line per 200 ms of progress ({"progress": …}:
 * counts, and the answers per kind and host so far),
 * then {"result": …} with every reply that was not a 2xx, and exits.
 *
 *   node load-gen.ts '{"bases": ["http://10.77.0.11:8080", …]}'
 */
import { createInterface } from 'node:readline'
import { sleep } from '../helpers/http.js'
import { mixedLoad, percentile } from '../chaos/mixed-load.js'

const { bases } = JSON.parse(process.argv[2] ?? '{}') as { bases: string[] }
if (!Array.isArray(bases) || bases.length === 0) throw new Error('usage: load-gen.ts \'{"bases": ["http://host:port", …]}\'')

let stopped = false
createInterface({ input: process.stdin }).on('line', (l) => { if (l.trim() === 'stop') stopped = true }).on('close', () => { stopped = true })
const say = (o: unknown, then?: () => void): void => { process.stdout.write(JSON.stringify(o) + '\n', then) }

const r = await mixedLoad(bases[0]!, 3600, async (running, p) => {
  while (running()) {
    say({ progress: { gets: p.gets, sessions: p.sessionCounts.length, keys: p.keys, cookie: p.cookie, answered: p.answered, failures: p.failures } })
    await sleep(200)
  }
}, undefined, { bases, stopped: () => stopped })

const sorted = r.latenciesMs.sort((a, b) => a - b)
// a pipe is written asynchronously: exit once the (large) result is out, not before
say({ result: { ...r, latenciesMs: [], latencyMs: { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), max: percentile(sorted, 1) }, requests: sorted.length } }, () => process.exit(0))
