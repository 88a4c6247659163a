/**
 * The admin API is never open by accident: a non-loopback bind without a token does not start; the
 * token comes inline, from a file or from the environment; reads can be protected, /metrics has its
 * own token; a browser on another origin cannot make a state-changing call.
 */
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startBackend } from '../helpers/backend.js'
import { BIN, ROOT, childEnv, startClaylb, writeConfig } from '../helpers/claylb.js'
import { req } from '../helpers/http.js'
import { buildConfig } from '../../src/shared/config/load.js'
import { configProblems as problemsOf } from '../helpers/config.js'

t.test('admin on a non-loopback address without a token: a start error naming the path and the fix', async (t) => {
  const up = { upstreams: [{ url: 'http://127.0.0.1:1' }] }
  const [problem, ...rest] = problemsOf({ ...up, admin: { host: '0.0.0.0' } })
  t.same(rest, [], 'one problem')
  t.match(problem, /^admin\.host: "0\.0\.0\.0" is not a loopback address/)
  t.match(problem, /admin\.token, admin\.tokenFile or admin\.tokenEnv/, 'says how to fix it')
  t.match(problem, /127\.0\.0\.1/, 'or to bind loopback')
  for (const host of ['127.0.0.1', '127.0.0.2', '::1', 'localhost']) t.same(problemsOf({ ...up, admin: { host } }), [], `${host} is loopback`)
  t.same(problemsOf({ ...up, admin: { host: '0.0.0.0', token: 'x' } }), [], 'with a token it starts')

  // the real CLI: exit 1, the problem on stderr, nothing listening
  const file = writeConfig({ ...up, admin: { host: '0.0.0.0', port: 0 } })
  const r = spawnSync(process.execPath, [BIN, 'start', '--config', file, '--port', '0'], { cwd: ROOT, env: childEnv(), encoding: 'utf8', timeout: 60_000 })
  t.equal(r.status, 1, 'exit 1')
  t.match(r.stderr, `invalid config (${file})`)
  t.match(r.stderr, 'admin.host: "0.0.0.0" is not a loopback address')
})

t.test('admin.tokenFile and admin.tokenEnv: the token from a file (a mounted Secret) or a variable', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'claylb-admin-'))
  const tokenFile = join(dir, 'token')
  writeFileSync(tokenFile, 'from-a-file\n')
  const up = { upstreams: [{ url: 'http://127.0.0.1:1' }] }
  t.equal(buildConfig({ ...up, admin: { tokenFile } }, {}, {}).admin.token, 'from-a-file', 'the trailing newline is not part of it')
  t.equal(buildConfig({ ...up, admin: { tokenEnv: 'ADMIN_TOKEN' } }, {}, { ADMIN_TOKEN: 'from-env' }).admin.token, 'from-env')
  t.equal(buildConfig({ ...up, admin: { metricsTokenEnv: 'SCRAPE' } }, {}, { SCRAPE: 'm' }).admin.metricsToken, 'm')
  t.match(problemsOf({ ...up, admin: { tokenFile: join(dir, 'missing') } }), [/^admin\.tokenFile: cannot read .*missing/])
  writeFileSync(join(dir, 'empty'), '\n')
  t.match(problemsOf({ ...up, admin: { tokenFile: join(dir, 'empty') } }), [/^admin\.tokenFile: .* is empty/])
  t.match(problemsOf({ ...up, admin: { tokenEnv: 'NOPE' } }), [/^admin\.tokenEnv: the environment variable NOPE is not set or empty/])
  t.match(problemsOf({ ...up, admin: { token: 'a', tokenEnv: 'T' } }, { T: 'b' }), [/^admin\.token: give one of admin\.token, admin\.tokenEnv/])
  t.match(problemsOf({ ...up, admin: { host: '0.0.0.0', tokenEnv: 'NOPE' } }), [/admin\.tokenEnv/], 'a missing variable is reported as such, not as "no token"')
  t.match(problemsOf({ ...up, admin: { protectReads: true } }), [/^admin\.protectReads: needs an admin token/], 'protectReads without a token would protect nothing')

  const a = await startBackend((q, s) => { q.resume(); s.end('a') })
  const lb = await startClaylb({ config: { upstreams: [{ url: a.url, id: 'a' }], admin: { tokenFile } } })
  t.teardown(async () => { await lb.stop(); await a.close() })
  t.equal((await req(`${lb.admin}/reload`, { method: 'POST' })).status, 401, 'no token: 401')
  t.equal((await req(`${lb.admin}/reload`, { method: 'POST', headers: { authorization: 'Bearer from-a-file' } })).status, 200, "the file's token: 200")
})

t.test('protectReads and metricsToken: who may read /status and /metrics; probes stay open', async (t) => {
  const a = await startBackend((q, s) => { q.resume(); s.end('a') })
  const lb = await startClaylb({
    config: { upstreams: [{ url: a.url, id: 'a' }], admin: { token: 'op', protectReads: true, metricsTokenEnv: 'SCRAPE_TOKEN' } },
    env: { SCRAPE_TOKEN: 'scrape' },
  })
  t.teardown(async () => { await lb.stop(); await a.close() })
  const get = async (path: string, token?: string): Promise<number> => (await req(`${lb.admin}${path}`, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } })).status
  t.equal(await get('/healthz'), 200, '/healthz is open (liveness probe)')
  t.equal(await get('/readyz'), 200, '/readyz is open (readiness probe)')
  const denied = await req(`${lb.admin}/status`)
  t.equal(denied.status, 401, '/status without a token: 401')
  t.equal(denied.headers['content-type'], 'application/problem+json')
  t.match(JSON.parse(denied.body), { type: 'urn:claylb:problem:admin-unauthorized', status: 401 })
  t.equal(denied.headers['www-authenticate'], 'Bearer realm="claylb-admin"')
  t.equal(await get('/status', 'scrape'), 401, 'the metrics token does not open /status')
  t.equal(await get('/status', 'op'), 200, 'the admin token opens /status')
  t.equal(await get('/metrics'), 401, '/metrics without a token: 401')
  t.equal(await get('/metrics', 'scrape'), 200, 'the metrics token opens /metrics')
  t.equal(await get('/metrics', 'op'), 200, 'so does the admin token')
  t.equal((await req(`${lb.admin}/reload`, { method: 'POST', headers: { authorization: 'Bearer scrape' } })).status, 401, 'the metrics token cannot reload')
})

t.test('a metrics token alone protects /metrics and nothing else', async (t) => {
  const a = await startBackend((q, s) => { q.resume(); s.end('a') })
  const lb = await startClaylb({ config: { upstreams: [{ url: a.url, id: 'a' }], admin: { token: 'op', metricsToken: 'scrape' } } })
  t.teardown(async () => { await lb.stop(); await a.close() })
  t.equal((await req(`${lb.admin}/metrics`)).status, 401)
  t.equal((await req(`${lb.admin}/metrics`, { headers: { authorization: 'Bearer scrape' } })).status, 200)
  t.equal((await req(`${lb.admin}/status`)).status, 200, 'protectReads off: /status stays open')
})

t.test('state-changing calls refuse cross-site browser requests, with or without the token', async (t) => {
  const a = await startBackend((q, s) => { q.resume(); s.end('a') })
  const lb = await startClaylb({ config: { upstreams: [{ url: a.url, id: 'a' }], admin: { token: 'op' } } })
  t.teardown(async () => { await lb.stop(); await a.close() })
  const auth = { authorization: 'Bearer op' }
  const host = new URL(lb.admin).host
  const refused: Array<[string, Record<string, string>]> = [
    ['another Origin', { origin: 'https://evil.example' }],
    ['the same host name on another port', { origin: `http://${new URL(lb.admin).hostname}:1` }],
    ['Origin: null', { origin: 'null' }],
    ['Sec-Fetch-Site: cross-site', { 'sec-fetch-site': 'cross-site' }],
    ['Sec-Fetch-Site: same-site', { 'sec-fetch-site': 'same-site' }],
  ]
  for (const [what, headers] of refused) {
    for (const path of ['/reload', '/upstreams/a/drain']) {
      const r = await req(`${lb.admin}${path}`, { method: 'POST', headers: { ...auth, ...headers } })
      t.equal(r.status, 403, `${what}: POST ${path} → 403`)
      t.equal(r.headers['content-type'], 'application/problem+json')
      t.match(JSON.parse(r.body), { type: 'urn:claylb:problem:admin-cross-site', status: 403 })
    }
  }
  t.equal((await req(`${lb.url}/x`)).body, 'a', 'nothing was drained by the refused calls')
  t.equal((await req(`${lb.admin}/status`, { headers: { origin: 'https://evil.example' } })).status, 200, 'reads are not state-changing')
  const same = await req(`${lb.admin}/upstreams/a/drain`, { method: 'POST', headers: { ...auth, origin: `http://${host}`, 'sec-fetch-site': 'same-origin' } })
  t.equal(same.status, 200, 'the same origin (the admin page itself) may')
  t.equal((await req(`${lb.admin}/upstreams/a/ready`, { method: 'POST', headers: auth })).status, 200, 'curl (no Origin) may')
})
