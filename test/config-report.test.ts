/**
 * One run of check-config reports every problem of a file: schema problems and the checks across keys
 * together, an unknown key with the key it probably meant, and a YAML error in full (line, column,
 * the offending text), every one of them.
 */
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BIN, childEnv } from './helpers/claylb.js'
import { configProblems } from './helpers/config.js'

const tmp = mkdtempSync(join(tmpdir(), 'claylb-report-'))
const checkConfig = (content: string): { status: number | null, lines: string[], stdout: string } => {
  const file = join(tmp, 'c.yaml')
  writeFileSync(file, content)
  const r = spawnSync(process.execPath, [BIN, 'check-config', file], { encoding: 'utf8', env: childEnv(), timeout: 60_000 })
  return { status: r.status, stdout: r.stdout, lines: r.stdout.trim().split('\n') }
}

t.test('schema problems and cross-key problems in one report', async (t) => {
  const r = checkConfig(`
listen: { port: 8080, http2: true }
upstream: [ { url: "http://127.0.0.1:9000" } ]
pools:
  api: { upstreams: [ { url: "http://127.0.0.1:9001" } ], balancer: { policy: fastest } }
routes:
  - { match: { pathPrefix: /v2 }, pool: nowhere }
timeouts: { connectMs: 0 }
`)
  t.equal(r.status, 1)
  t.same(r.lines.sort(), [
    'listen.http2: needs listen.tls (HTTP/2 is offered by ALPN over TLS; cleartext h2c is not served)',
    'pools.api.balancer.policy: must be "round-robin", "least-request" or "consistent-hash"',
    'routes[0].pool: unknown pool "nowhere" (pools: "api")',
    'timeouts.connectMs: must be a positive integer',
    'upstream: unknown key (did you mean upstreams?)',
  ], 'all five, in one run')
})

t.test('"did you mean" for a slip in a nested key; none for a key that resembles nothing', async (t) => {
  const r = checkConfig('healthCheck: { intervalMS: 500 }\nadmin: { tokenfile: /x }\nfrobnicate: 1\n')
  t.same(r.lines.sort(), [
    'admin.tokenfile: unknown key (did you mean admin.tokenFile?)',
    'frobnicate: unknown key',
    'healthCheck.intervalMS: unknown key (did you mean healthCheck.intervalMs?)',
  ])
})

t.test('a YAML error is reported whole: where, and the offending text; every error of the file', async (t) => {
  const r = checkConfig('listen:\n  port: 8080\n  port: 8081\nadmin:\n  host: 127.0.0.1\n  host: 127.0.0.2\n')
  t.equal(r.status, 1)
  t.match(r.stdout, /not valid YAML\/JSON: Map keys must be unique at line 3, column 3/)
  t.match(r.stdout, /not valid YAML\/JSON: Map keys must be unique at line 6, column 3/, 'the second error too')
  t.match(r.stdout, /\n\s*port: 8081\n\s*\^/, 'the offending line, marked')
})

t.test('a library caller passing a value no file holds (a function) still gets the schema problems, not a crash', async (t) => {
  const problems = configProblems({ listen: { port: 'x' }, log: { level: () => 'info' } }).sort()
  t.equal(problems.length, 2, problems.join('\n'))
  t.equal(problems[0], 'listen.port: must be a port number (0-65535)')
  t.match(problems[1], /^log\.level: /)
})

t.test('an alias bomb is a config error, not a crash', async (t) => {
  const levels = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]']
  for (let i = 1; i < 8; i++) levels.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(10).fill(`*${String.fromCharCode(96 + i)}`).join(',')}]`)
  const r = checkConfig(levels.join('\n') + '\n')
  t.equal(r.status, 1, r.stdout)
  t.match(r.stdout, /not valid YAML\/JSON: .*alias/i)
})
