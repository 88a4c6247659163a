/**
 * Differential fuzzer (fast-check): generated client conversations (HTTP/1.0, 1.1 and 2, pipelined or
 * not, Content-Length or chunked bodies with trailers, Expect: 100-continue, hang-ups) through ONE
 * real claylb to a recording upstream that answers each request with a generated script (interim
 * answers, odd and invalid statuses, any framing, trailers, early answers, resets). The oracle
 * (test/fuzz/oracle) checks what both ends saw against the model (test/fuzz/model): the class of
 * bugs where the state of one message leaks into the next one or into another connection.
 *
 * `npm test` runs a fixed set of seeds; `npm run fuzz` runs many more. FUZZ_SEED, FUZZ_RUNS,
 * FUZZ_PATH (replay a reported failure) and FUZZ_WAIT_MS (the hang guard per answer) set them.
 */
import t from 'tap'
import fc from 'fast-check'
import { startClaylb } from '../helpers/claylb.js'
import { Pki } from '../helpers/pki.js'
import { settle, upstreamInflight } from '../helpers/rig.js'
import { KNOWN } from './known.js'
import { judge } from './oracle.js'
import { play } from './run.js'
import { FEATURES, scenarioArb, type Feature } from './arbitraries.js'
import { describe } from './scenario.js'
import { RecordingUpstream } from './upstream.js'
import type { Peer } from './model.js'

const env = process.env
const waitMs = Number(env['FUZZ_WAIT_MS'] ?? 6000)
// FUZZ_SEED=random (npm run fuzz): a new seed each run, printed in the test's name and in any failure
const seedOf = (v: string): number => v === 'random' ? Math.floor(Math.random() * 0x7fffffff) : Number(v)
const seeds = env['FUZZ_SEED'] !== undefined ? [seedOf(env['FUZZ_SEED'])] : [1, 2, 3]
const numRuns = Number(env['FUZZ_RUNS'] ?? 100)
/** per seed: generation and shrinking stop there (a failing scenario that stalls costs FUZZ_WAIT_MS per shrink step) */
const timeLimitMs = Number(env['FUZZ_TIME_LIMIT_MS'] ?? 40_000)
const exclude = new Set((env['FUZZ_EXCLUDE'] ?? '').split(',').filter((f) => f !== '') as Feature[])
for (const f of exclude) if (!FEATURES.includes(f)) throw new Error(`FUZZ_EXCLUDE: unknown feature ${f} (known: ${FEATURES.join(', ')})`)

const upstream = new RecordingUpstream()
await upstream.listen()
// one claylb for the whole file; nothing but the proxy's own rules between the two ends: no health
// checks, no ejection (a scripted 5xx or reset must not take the only upstream out)
// TLS with HTTP/2 by ALPN: HTTP/1.x and HTTP/2 clients on the same listener, so one's state can meet the other's
const leaf = new Pki().issue(['a.test'])
const lb = await startClaylb({
  args: ['--upstream', `http://127.0.0.1:${upstream.port}`],
  config: {
    listen: { http2: true, tls: { cert: leaf.cert, key: leaf.key } },
    log: { access: false },
    healthCheck: { enabled: false },
    outlier: { enabled: false },
    // the model (model.ts) knows the forwarding rules, not a made id per request: test/observe covers it
    requestId: { enabled: false },
  },
})
t.teardown(async () => { await lb.stop('SIGKILL'); await upstream.close() })
// Node 20 can spin at 100 % CPU in its exit-time handle cleanup (Environment::CleanupHandles, seen with
// gdb) after this file's TLS and HTTP/2 clients are all destroyed; every test has reported by the time
// the loop is empty, so the process ends there instead of in that cleanup
process.once('beforeExit', () => process.exit(process.exitCode ?? 0))
const port = Number(new URL(lb.url).port)
/** claylb has no request in flight (its /status), checked on each event of a settle loop: state, not time */
const idle = async (): Promise<void> => { await settle(() => upstreamInflight(lb), (n) => n === 0, waitMs, 20) }
const peer: Peer = { clientIp: '127.0.0.1', proto: 'https', authority: `127.0.0.1:${upstream.port}` }

for (const k of KNOWN) {
  t.test(`known: ${k.name}`, async (t) => {
    const violations = judge(await play(k.scenario, port, upstream, waitMs, idle), peer, waitMs)
    t.same(violations, [], describe(k.scenario))
  })
}

for (const seed of seeds) {
  t.test(`seed ${seed}: ${numRuns} scenarios, every message only where it belongs`, async (t) => {
    let requests = 0
    let received = 0
    const property = fc.asyncProperty(scenarioArb(exclude), async (scenario) => {
      const obs = await play(scenario, port, upstream, waitMs, idle)
      requests += obs.clients.reduce((n, c) => n + c.reqs.length, 0)
      received += obs.upstream.length
      const violations = judge(obs, peer, waitMs)
      if (violations.length > 0) throw new Error(violations.join('\n'))
    })
    const details = await fc.check(property, { seed, numRuns, path: env['FUZZ_PATH'], endOnFailure: env['FUZZ_NO_SHRINK'] === '1', interruptAfterTimeLimit: timeLimitMs })
    if (details.failed) {
      // the seed, the path to replay it (FUZZ_SEED=… FUZZ_PATH=…), the shrunk scenario and its violations
      const error = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance)
      const replay = `FUZZ_SEED=${details.seed} FUZZ_PATH=${details.counterexamplePath ?? ''}${exclude.size > 0 ? ` FUZZ_EXCLUDE=${[...exclude].join(',')}` : ''} npx tap test/fuzz/differential.test.ts`
      t.comment([
        `property failed after ${details.numRuns} scenarios, shrunk ${details.numShrinks} times${details.interrupted ? ' (shrinking cut at FUZZ_TIME_LIMIT_MS)' : ''}`,
        `replay: ${replay}`,
        `counterexample: ${describe(details.counterexample?.[0])}`,
        'violations:',
        error,
      ].join('\n'))
      t.fail(`seed ${details.seed}: a scenario broke a property (the comment above has the counterexample); replay: ${replay}`)
    } else t.pass(`${details.numRuns} scenarios${details.interrupted ? ' (cut at FUZZ_TIME_LIMIT_MS)' : ''}: ${requests} requests, ${received} received upstream`)
  })
}
