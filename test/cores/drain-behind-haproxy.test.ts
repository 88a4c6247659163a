/**
 * SIGTERM loses nothing behind a balancer (issue 25): four claylb instances behind HAProxy, set up as
 * the Compose front (config/haproxy.cfg: TCP passthrough, each instance checked on its admin port's
 * /readyz), under a bounded load; three of them are stopped one after another — one proxy process,
 * two with SO_REUSEPORT, two with the primary handing connections over — each once the load made
 * progress. Every request must be answered 200: /readyz turns 503 at once, the port keeps accepting
 * for shutdown.acceptGraceMs while HAProxy's checks notice, then closes, and in-flight requests finish.
 * Before the fix the port closed with the 503 and HAProxy's connections to it were refused or cut.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { writeFileSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { Agent, request } from 'undici'
import { startBackend } from '../helpers/backend.js'
import { startClaylb, type Claylb } from '../helpers/claylb.js'
import { freePort } from '../helpers/redis.js'
import { sleep } from '../helpers/http.js'

/** how long each instance keeps accepting after SIGTERM: many of HAProxy's 100 ms checks, even on a busy machine */
const ACCEPT_GRACE_MS = 3000
const LOOPS = 8
const MAX_REQUESTS = 40_000
const MAX_SECONDS = 150

function requireHaproxy (): void {
  if (spawnSync('haproxy', ['-v']).error !== undefined) throw new Error('haproxy is not on the PATH: install it (Debian/Ubuntu: apt-get install -y haproxy)')
}

t.test('stopping instances behind HAProxy under load fails no request', async (t) => {
  requireHaproxy()
  // each answer takes a little while, so requests are in flight at every SIGTERM
  const backend = await startBackend((req, res) => {
    req.resume()
    req.on('end', () => setTimeout(() => res.end('ok'), 5))
  })
  t.teardown(() => backend.close())
  const kinds: Array<{ name: string, processes: number, env?: NodeJS.ProcessEnv }> = [
    { name: 'one-process', processes: 1 },
    { name: 'reuseport', processes: 2 },
    { name: 'handoff', processes: 2, env: { CLAYLB_ACCEPT: 'handoff' } },
    { name: 'survivor', processes: 1 },
  ]
  const instances: Claylb[] = await Promise.all(kinds.map((k) => startClaylb({
    env: k.env ?? {},
    config: {
      listen: { processes: k.processes },
      upstreams: [{ url: backend.url }],
      shutdown: { acceptGraceMs: ACCEPT_GRACE_MS },
      routes: [{ match: { pathPrefix: '/' }, pool: 'default', responseHeaders: { set: { 'x-instance': k.name } } }],
      log: { access: false },
    },
  })))
  t.teardown(async () => { await Promise.all(instances.map((c) => c.stop('SIGKILL'))) })

  const front = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'claylb-haproxy-'))
  const cfg = join(dir, 'haproxy.cfg')
  writeFileSync(cfg, [
    'global', '    maxconn 4000',
    'defaults', '    mode tcp', '    timeout connect 2s', '    timeout client 30s', '    timeout server 30s',
    'frontend http', `    bind 127.0.0.1:${front}`, '    default_backend claylb',
    'backend claylb', '    balance roundrobin', '    option httpchk GET /readyz', '    http-check expect status 200',
    ...instances.map((c, i) => `    server ${kinds[i]!.name} ${new URL(c.url).host} check port ${new URL(c.admin).port} inter 100 fall 2 rise 1`),
    '',
  ].join('\n'))
  const haproxy: ChildProcess = spawn('setpriv', ['--pdeathsig', 'KILL', 'haproxy', '-db', '-f', cfg], { stdio: ['ignore', 'ignore', 'pipe'] })
  let haproxyErr = ''
  haproxy.stderr!.setEncoding('utf8').on('data', (d: string) => { haproxyErr += d })
  t.teardown(() => { haproxy.kill('SIGKILL') })

  const agent = new Agent({ connections: LOOPS, keepAliveTimeout: 10_000 })
  t.teardown(() => agent.close())
  const base = `http://127.0.0.1:${front}`
  // HAProxy is up and sends to every instance (a new connection each time: HAProxy, in TCP mode,
  // picks the instance per connection)
  const seen = new Set<string>()
  for (let i = 0; i < 400 && seen.size < kinds.length; i++) {
    try {
      const res = await request(`${base}/warm`, { dispatcher: agent, reset: true })
      await res.body.text()
      if (res.statusCode === 200) seen.add(String(res.headers['x-instance']))
    } catch { await sleep(50) }
  }
  t.equal(seen.size, kinds.length, `HAProxy reaches every instance (${[...seen].join(', ')}; haproxy: ${haproxyErr.slice(0, 500)})`)

  let served = 0
  const failures: string[] = []
  const byInstance = new Map<string, number>()
  let running = true
  const deadline = Date.now() + MAX_SECONDS * 1000
  const loop = async (): Promise<void> => {
    while (running && served + failures.length < MAX_REQUESTS && Date.now() < deadline) {
      try {
        const res = await request(`${base}/x`, { dispatcher: agent })
        const body = await res.body.text()
        if (res.statusCode !== 200) failures.push(`${res.statusCode} ${body.slice(0, 200)}`)
        else {
          served++
          const who = String(res.headers['x-instance'])
          byInstance.set(who, (byInstance.get(who) ?? 0) + 1)
        }
      } catch (err) {
        failures.push(String((err as Error).message))
      }
    }
  }
  const loops = Array.from({ length: LOOPS }, loop)
  const progress = async (n: number): Promise<boolean> => {
    const goal = served + n
    while (served < goal) {
      if (served + failures.length >= MAX_REQUESTS || Date.now() >= deadline) return false
      await sleep(20)
    }
    return true
  }

  for (let i = 0; i < 3; i++) {
    const victim = instances[i]!
    const name = kinds[i]!.name
    if (!await progress(300)) break
    const before = byInstance.get(name) ?? 0
    t.ok(before > 0, `${name} served before its SIGTERM`)
    const code = await victim.stop('SIGTERM')
    t.equal(code, 0, `${name} drained and exited 0`)
    t.ok(victim.logs.some((l) => l['msg'] === 'stopped'), `${name} logged its stop`)
  }
  t.ok(await progress(300), 'the survivor serves on after the last stop')
  running = false
  await Promise.all(loops)

  t.same(failures.slice(0, 10), [], `no request failed (${failures.length} of ${served + failures.length})`)
  t.ok((byInstance.get('survivor') ?? 0) > 0, 'the survivor served')
  t.ok(served >= 1200, `the load went on through the stops (${served} served: ${JSON.stringify(Object.fromEntries(byInstance))})`)
})
