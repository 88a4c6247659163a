/**
 * docker-compose.yml, checked without Docker: against the Compose Specification's JSON schema (vendored
 * in test/fixtures/compose-spec, see SOURCE.md there), for what scaling out needs (replicas behind an L4
 * front that probes /readyz, no published claylb port, the secret from the environment), and for Redis
 * durability: the compose file's own redis-server arguments are run and the server is SIGKILLed.
 */
import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parse } from 'yaml'
import { buildConfig } from '../../src/shared/config/load.js'
import { ROOT } from '../helpers/claylb.js'
import { connectRedis } from '../helpers/ioredis.js'
import { freePort, requireRedisServer } from '../helpers/redis.js'
import { sleep } from '../helpers/http.js'
import { compileSchema, type Obj } from './schema.js'
import { configProblems } from '../helpers/config.js'

const file = readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8')
const compose = parse(file) as Obj
const services = compose['services'] as Record<string, Obj>
const validate = compileSchema(JSON.parse(readFileSync(join(ROOT, 'test/fixtures/compose-spec/compose-spec.json'), 'utf8')) as Obj)

t.test('docker-compose.yml is valid against the Compose Specification schema', async (t) => {
  t.same(validate(compose), [], 'no schema errors')
})

t.test('the schema does reject broken files (the check can fail)', async (t) => {
  const broken: Array<[string, string]> = [
    ['an unknown service key', 'services:\n  redis:\n    image: redis\n    nonsense_key: 1\n'],
    ['replicas as a list', 'services:\n  a:\n    image: a\n    deploy: { replicas: [3] }\n'],
    ['a healthcheck interval as a list', 'services:\n  a:\n    image: a\n    healthcheck: { interval: [1] }\n'],
    ['an unknown depends_on condition', 'services:\n  a:\n    image: a\n    depends_on: { b: { condition: when_ready } }\n  b: { image: b }\n'],
  ]
  for (const [what, yaml] of broken) t.not(validate(parse(yaml)).length, 0, what)
})

t.test('strict: every misspelt key is an error naming it (docker compose would refuse it too)', async (t) => {
  const misspelt: Array<[string, string]> = [
    ['stop_grace_periode', 'services:\n  a:\n    image: a\n    stop_grace_periode: 15s\n'],
    ['enviroment', 'services:\n  a:\n    image: a\n    enviroment: { A: b }\n'],
    ['intervall', 'services:\n  a:\n    image: a\n    healthcheck: { intervall: 2s }\n'],
    ['limit', 'services:\n  a:\n    image: a\n    deploy: { resources: { limit: { cpus: "1" } } }\n'],
    ['contxt', 'services:\n  a:\n    image: a\n    build: { contxt: . }\n'],
    ['volume', 'volume: {}\nservices: { a: { image: a } }\n'],
  ]
  for (const [key, yaml] of misspelt) t.match(validate(parse(yaml)).join('\n'), `must NOT have additional properties: ${key}`, `${key} is refused, by name`)
})

t.test('claylb scales: built from the Dockerfile, 3 replicas, no published port, behind an L4 front probing /readyz', async (t) => {
  const lb = services['claylb']!
  t.match(lb['build'], { context: '.', dockerfile: 'Dockerfile' })
  t.equal((lb['deploy'] as Obj)['replicas'], 3)
  t.notOk('ports' in lb, 'replicas publish no host port (they would collide)')
  t.notOk('volumes' in lb, 'no bind mount of the source, nothing installed at start')
  t.notOk('command' in lb, "the image's own command")
  t.match(lb['depends_on'], { redis: { condition: 'service_healthy' } })

  const front = services['front']!
  t.match(front['image'], /^haproxy:/)
  t.same(front['ports'], ['8080:8080'])
  const mount = (front['volumes'] as string[])[0]!
  t.match(mount, /^\.\/config\/haproxy\.cfg:\/usr\/local\/etc\/haproxy\/haproxy\.cfg/)
  const cfg = readFileSync(join(ROOT, 'config/haproxy.cfg'), 'utf8')
  t.match(cfg, /^\s*mode tcp$/m, 'TCP passthrough (L4)')
  t.match(cfg, /^\s*option httpchk GET \/readyz$/m, 'each replica is probed on /readyz')
  const admin = (parse(readFileSync(join(ROOT, 'config/container.yaml'), 'utf8')) as { admin: { host: string, port: number } }).admin
  t.match(cfg, new RegExp(`server-template claylb- \\d+ claylb:8080 check port ${admin.port}\\b`), 'the probe goes to the admin port the image listens on')
  t.equal(admin.host, '0.0.0.0', 'the admin port is reachable by the front')

  // docker stop: the front's checks (inter × fall) notice the 503 within the accept grace, and Compose
  // waits for the grace and the drain before its SIGKILL
  const config = buildConfig(parse(readFileSync(join(ROOT, 'config/container.yaml'), 'utf8')), {}, { CLAYLB_ADMIN_TOKEN: 'compose-test-token' })
  const check = /\binter (\d+)s fall (\d+)\b/.exec(cfg)!
  t.ok(config.shutdown.acceptGraceMs > Number(check[1]) * Number(check[2]) * 1000, `accept grace ${config.shutdown.acceptGraceMs} ms > the front's inter × fall`)
  t.ok(config.shutdown.timeoutMs >= config.timeouts.requestMs, 'the drain outlasts the request limit')
  const stopGrace = /^(\d+)s$/.exec(String(lb['stop_grace_period']))!
  t.ok(Number(stopGrace[1]) * 1000 > config.shutdown.acceptGraceMs + config.shutdown.timeoutMs, `stop_grace_period ${String(lb['stop_grace_period'])} > accept grace + drain`)
})

t.test("the admin port is not open: container.yaml's token comes from the environment compose requires", async (t) => {
  const admin = (parse(readFileSync(join(ROOT, 'config/container.yaml'), 'utf8')) as { admin: { tokenEnv?: string } }).admin
  t.ok(admin.tokenEnv, 'admin.tokenEnv is set')
  const env = services['claylb']!['environment'] as Record<string, string>
  t.match(env[admin.tokenEnv!], new RegExp(`^\\$\\{${admin.tokenEnv}:\\?`), `compose refuses to start without ${admin.tokenEnv}`)
  const config = parse(readFileSync(join(ROOT, 'config/container.yaml'), 'utf8')) as unknown
  t.same(configProblems(config, { [admin.tokenEnv!]: 'a-token' }), [], 'container.yaml is valid with the token')
  t.match(configProblems(config, {}), [new RegExp(`^admin\\.tokenEnv: the environment variable ${admin.tokenEnv} is not set`)], 'and claylb does not start without it')
})

t.test('no committed secret: SESSION_SECRET comes from the environment and compose fails clearly when unset', async (t) => {
  const env = services['claylb']!['environment'] as Record<string, string>
  t.match(env['SESSION_SECRET'], /^\$\{SESSION_SECRET:\?[^}]*set SESSION_SECRET[^}]*\}$/, 'required variable with a message')
  for (const [name, s] of Object.entries(services)) {
    for (const [k, v] of Object.entries((s['environment'] ?? {}) as Record<string, string>)) {
      if (/SECRET|PASSWORD|TOKEN/i.test(k)) t.match(String(v), /^\$\{[A-Z_]+:\?/, `${name}.${k} is interpolated, never a literal`)
    }
  }
})

t.test("Redis persistence: the compose file's redis-server arguments keep every acknowledged write across a SIGKILL", async (t) => {
  requireRedisServer()
  const redis = services['redis']!
  const args = (redis['command'] as string[]).slice(1)
  const opt = (name: string): string | undefined => { const i = args.indexOf(`--${name}`); return i < 0 ? undefined : args[i + 1] }
  t.equal(opt('appendonly'), 'yes', 'append-only file on')
  t.ok(['everysec', 'always'].includes(opt('appendfsync') ?? ''), `appendfsync ${opt('appendfsync')} (everysec or always)`)
  const dataDir = opt('dir')!
  t.ok(dataDir, '--dir names the data directory')
  const volume = (redis['volumes'] as string[]).find((v) => v.endsWith(`:${dataDir}`))
  t.ok(volume, `a volume is mounted at ${dataDir}`)
  t.ok(Object.keys((compose['volumes'] ?? {}) as Obj).includes(volume!.split(':')[0]!), 'a named volume, declared at the top level')

  // the same arguments, on loopback and a temporary directory in place of the volume
  const dir = mkdtempSync(join(tmpdir(), 'claylb-compose-redis-'))
  const port = await freePort()
  const runArgs = args.map((a, i) => args[i - 1] === '--dir' ? dir : a)
  runArgs.push('--port', String(port), '--bind', '127.0.0.1')
  const start = (): ChildProcess => spawn('redis-server', runArgs, { stdio: 'ignore' })
  let proc = start()
  t.teardown(() => { proc.kill('SIGKILL') })
  let c = await connectRedis(`redis://127.0.0.1:${port}`)
  t.same(await c.config('GET', 'appendonly'), ['appendonly', 'yes'])
  for (let i = 0; i < 500; i++) await c.incr('compose:counter')
  // everysec: the write is in the file at once (a process crash keeps it), fsynced within a second
  await sleep(1500)
  c.disconnect()
  await new Promise<void>((resolve) => { proc.once('exit', () => resolve()); proc.kill('SIGKILL') })
  proc = start()
  c = await connectRedis(`redis://127.0.0.1:${port}`)
  t.equal(await c.get('compose:counter'), '500', 'all 500 increments are back after the restart')
  c.disconnect()
})
