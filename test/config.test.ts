import t from 'tap'
import { spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BIN, ROOT, childEnv } from './helpers/claylb.js'
import { parse } from 'yaml'
import { buildConfig, ConfigError } from '../src/shared/config/load.js'
import { configSchema } from '../src/shared/config/schema.js'

const tmp = mkdtempSync(join(tmpdir(), 'claylb-config-'))
const checkConfig = (content: string, name = 'c.yaml') => {
  const file = join(tmp, name)
  writeFileSync(file, content)
  return spawnSync(process.execPath, [BIN, 'check-config', file], { encoding: 'utf8', env: childEnv() })
}

t.test('check-config: three mistakes, three path-qualified messages, exit 1', async (t) => {
  const r = checkConfig(`
idempotency: { ttlSeconds: -5 }
upstreams: [ { url: "ftp://x", weight: 1 } ]
listen: { port: 8080, colour: blue }
`)
  t.equal(r.status, 1)
  const lines = r.stdout.trim().split('\n').sort()
  t.same(lines, [
    'idempotency.ttlSeconds: must be a positive integer',
    'listen.colour: unknown key',
    'upstreams.0.url: must be an http:// or https:// URL',
  ])
})

t.test('check-config: the shipped default config is valid', async (t) => {
  const r = spawnSync(process.execPath, [BIN, 'check-config', join(ROOT, 'config', 'default.yaml')], { encoding: 'utf8', env: childEnv() })
  t.equal(r.status, 0, r.stdout + r.stderr)
})

t.test('defaults live in the schema: the shipped config sets nothing to its default', async (t) => {
  const defaults = configSchema.parse({}) as unknown as Record<string, unknown>
  const shipped = parse(readFileSync(join(ROOT, 'config', 'default.yaml'), 'utf8')) as Record<string, unknown>
  const same: string[] = []
  const walk = (a: unknown, d: unknown, path: string): void => {
    if (a !== null && typeof a === 'object' && !Array.isArray(a)) {
      for (const [k, v] of Object.entries(a)) walk(v, (d as Record<string, unknown> | undefined)?.[k], path ? `${path}.${k}` : k)
    } else if (JSON.stringify(a) === JSON.stringify(d)) same.push(`${path}: ${JSON.stringify(a)}`)
  }
  walk(shipped, defaults, '')
  t.same(same, [], 'no key repeats its schema default')
  t.ok(Object.keys(shipped).length > 0, 'the file sets something')
})

t.test('check-config: JSON works, broken syntax is a clear error', async (t) => {
  t.equal(checkConfig('{"listen": {"port": 1234}}', 'c.json').status, 0)
  const bad = checkConfig('listen: { port: [', 'bad.yaml')
  t.equal(bad.status, 1)
  t.match(bad.stdout, /not valid YAML\/JSON/)
})

t.test('defaults, flag overrides, REDIS_URL, frozen result', async (t) => {
  const c = buildConfig({}, {}, { REDIS_URL: 'redis://10.1.2.3:6380' })
  t.equal(c.listen.port, 8080)
  t.equal(c.admin.host, '127.0.0.1')
  t.equal(c.workers.count, 4, 'no upstreams: 4 workers')
  t.equal(c.redis.url, 'redis://10.1.2.3:6380')
  t.ok(Object.isFrozen(c) && Object.isFrozen(c.timeouts), 'deep-frozen')
  const d = buildConfig({ listen: { port: 1 } }, { port: 2, upstreams: ['http://127.0.0.1:9'], redis: 'redis://h:1' }, {})
  t.equal(d.listen.port, 2, 'flag overrides the file')
  t.equal(d.workers.count, 0, 'upstreams given: no workers by default')
  t.equal(d.redis.url, 'redis://h:1')
  t.throws(() => buildConfig([], {}, {}), ConfigError)
})

t.test('start with an invalid config exits 1 and names the problem', async (t) => {
  const file = join(tmp, 'bad-start.yaml')
  writeFileSync(file, 'timeouts: { connectMs: 0 }\n')
  const r = spawnSync(process.execPath, [BIN, 'start', '--config', file], { encoding: 'utf8', timeout: 90_000, env: childEnv() })
  t.equal(r.status, 1)
  t.match(r.stderr, /timeouts\.connectMs: must be a positive integer/)
})

t.test('shutdown: accept grace and drain defaults, the environment, the former shutdownTimeoutMs', async (t) => {
  const c = buildConfig({}, {}, {})
  t.same(c.shutdown, { acceptGraceMs: 10_000, timeoutMs: 60_000 }, 'a grace a balancer notices in, a drain as long as the request limit')
  t.equal(buildConfig({}, {}, { CLAYLB_ACCEPT_GRACE_MS: '250' }).shutdown.acceptGraceMs, 250)
  t.equal(buildConfig({ shutdown: { acceptGraceMs: 0 } }, {}, { CLAYLB_ACCEPT_GRACE_MS: '250' }).shutdown.acceptGraceMs, 0, 'the file wins over the environment')
  t.throws(() => buildConfig({}, {}, { CLAYLB_ACCEPT_GRACE_MS: 'soon' }), /CLAYLB_ACCEPT_GRACE_MS: must be a non-negative integer/)
  t.equal(buildConfig({ timeouts: { requestMs: 90_000 } }, {}, {}).shutdown.timeoutMs, 90_000, 'follows a longer request limit')
  t.equal(buildConfig({ pools: { slow: { upstreams: [{ url: 'http://127.0.0.1:9' }], timeouts: { requestMs: 120_000 } } } }, {}, {}).shutdown.timeoutMs, 120_000, "and a pool's")
  t.equal(buildConfig({ shutdownTimeoutMs: 5000 }, {}, {}).shutdown.timeoutMs, 5000, 'the former key still loads')
  t.equal(buildConfig({ shutdownTimeoutMs: 5000, shutdown: { timeoutMs: 7000 } }, {}, {}).shutdown.timeoutMs, 7000)
  t.throws(() => buildConfig({ shutdown: { acceptGraceMs: -1 } }, {}, {}), /shutdown.acceptGraceMs: must be a non-negative integer/)
})

t.test('dns upstreams: split from the url ones, and every mistake named with its path', async (t) => {
  const c = buildConfig({ upstreams: [{ url: 'http://127.0.0.1:1' }, { dns: 'app.internal:8080', refreshMs: 5000 }], pools: { s: { upstreams: [{ dns: '_http._tcp.app.internal', srv: true, scheme: 'https', weight: 2 }] } } }, {}, {})
  t.same(c.upstreams, [{ url: 'http://127.0.0.1:1', weight: 1 }])
  t.same(c.dnsUpstreams, [{ dns: 'app.internal:8080', srv: false, scheme: 'http', weight: 1, refreshMs: 5000 }])
  t.same(c.pools['s']!.dnsUpstreams, [{ dns: '_http._tcp.app.internal', srv: true, scheme: 'https', weight: 2 }])
  t.same(c.dns, { servers: [], minRefreshMs: 1000, maxRefreshMs: 30_000, timeoutMs: 2000 })
  t.equal(c.workers.count, 0, 'dns upstreams alone make a default pool: no workers')
  const problems = (raw: unknown): readonly string[] => {
    try { buildConfig(raw, {}, {}); return [] } catch (err) { return (err as ConfigError).problems }
  }
  t.same(problems({ upstreams: [{ weight: 2 }] }), ['upstreams.0: must have either url or dns'])
  t.same(problems({ upstreams: [{ url: 'http://a:1', dns: 'a:1' }] }), ['upstreams.0: must have either url or dns'])
  t.same(problems({ upstreams: [{ dns: 'app.internal' }] }), ['upstreams.0.dns: must be "name:port" (or an SRV name with srv: true)'])
  t.same(problems({ upstreams: [{ dns: 'app.internal:99999' }] }), ['upstreams.0.dns: the port must be 0-65535'])
  t.same(problems({ upstreams: [{ dns: 'app.internal:80', srv: true }] }), ['upstreams.0.dns: must be an SRV name, "_service._proto.name"'])
  t.same(problems({ upstreams: [{ url: 'http://a:1', srv: true }] }), ['upstreams.0.srv: goes with dns, not url'])
  t.same(problems({ upstreams: [{ dns: 'a:1', id: 'x' }] }), ['upstreams.0.id: a dns upstream names each address it finds itself (dns/address:port)'])
  t.same(problems({ dns: { servers: ['dns.example'] } }), ['dns.servers.0: must be an IP address, optionally with :port ([v6]:port)'])
  t.same(problems({ dns: { minRefreshMs: 5000, maxRefreshMs: 1000 } }), ['dns.minRefreshMs: must not exceed dns.maxRefreshMs (1000)'])
})
