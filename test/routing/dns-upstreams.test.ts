/**
 * Upstreams from DNS (issue 25): a real DNS server started here (dnsmasq on 127.0.0.1, answering from
 * a hosts file it re-reads on SIGHUP) whose records change under a bounded load. claylb re-resolves
 * (`dns.servers` points it at that server), adds the new addresses, drains the gone one, and keeps
 * the last good set when the server dies: 0 failed requests, and the traffic follows the records.
 * A/AAAA ("name:port") with one proxy process, SRV with two (the hosts reach them in snapshots).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import http, { type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { Agent, request } from 'undici'
import { startClaylb, type Claylb } from '../helpers/claylb.js'
import { sleep } from '../helpers/http.js'
import { freePort } from '../helpers/redis.js'

const LOOPS = 6
const MAX_REQUESTS = 30_000
const MAX_SECONDS = 120

function requireDnsmasq (): void {
  if (spawnSync('dnsmasq', ['--version']).error !== undefined) throw new Error('dnsmasq is not on the PATH: install it (Debian/Ubuntu: apt-get install -y dnsmasq)')
}

interface Backends { port: number, count: Map<string, number>, close (address: string): Promise<void>, closeAll (): Promise<void> }

/** one backend on each loopback address, all on the same port (what a DNS name with several A records looks like) */
async function startBackends (addresses: string[]): Promise<Backends> {
  const count = new Map<string, number>()
  const servers = new Map<string, Server>()
  let port = 0
  for (const a of addresses) {
    const s = http.createServer((req, res) => {
      req.resume()
      req.on('end', () => {
        count.set(a, (count.get(a) ?? 0) + 1)
        res.setHeader('x-backend', a)
        res.end(a)
      })
    })
    await new Promise<void>((resolve, reject) => { s.once('error', reject); s.listen(port, a, () => resolve()) })
    port = (s.address() as AddressInfo).port
    servers.set(a, s)
  }
  const close = (a: string): Promise<void> => new Promise((resolve) => {
    const s = servers.get(a)
    if (s === undefined) return resolve()
    servers.delete(a)
    s.closeAllConnections()
    s.close(() => resolve())
  })
  return { port, count, close, closeAll: async () => { await Promise.all([...servers.keys()].map(close)) } }
}

interface Dns { port: number, hosts (lines: string[]): void, kill (): void }

async function startDnsmasq (t: Test, extra: string[] = []): Promise<Dns> {
  requireDnsmasq()
  const dir = mkdtempSync(join(tmpdir(), 'claylb-dnsmasq-'))
  const hostsFile = join(dir, 'hosts')
  writeFileSync(hostsFile, '')
  const port = await freePort()
  const proc: ChildProcess = spawn('setpriv', ['--pdeathsig', 'KILL', 'dnsmasq', '--keep-in-foreground', '--conf-file=/dev/null', '--user=root',
    '--listen-address=127.0.0.1', '--bind-interfaces', `--port=${port}`, '--no-resolv', '--no-hosts', `--addn-hosts=${hostsFile}`,
    '--local-ttl=1', '--pid-file=', ...extra], { stdio: ['ignore', 'ignore', 'pipe'] })
  let err = ''
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => { err += d })
  t.teardown(() => { proc.kill('SIGKILL') })
  // it is up once a query for a name it does not know gets an answer (REFUSED: no upstream server), not a timeout
  const { Resolver } = await import('node:dns/promises')
  const r = new Resolver({ timeout: 200, tries: 1 })
  r.setServers([`127.0.0.1:${port}`])
  for (let i = 0; ; i++) {
    try { await r.resolve4('probe.test'); break } catch (e) {
      if (['ENOTFOUND', 'ENODATA', 'EREFUSED'].includes(String((e as { code?: string }).code))) break
      if (i > 100 || proc.exitCode !== null) throw new Error(`dnsmasq did not answer: ${err}`)
      await sleep(50)
    }
  }
  return {
    port,
    hosts (lines) {
      writeFileSync(hostsFile, lines.join('\n') + '\n')
      proc.kill('SIGHUP') // dnsmasq re-reads its addn-hosts files
    },
    kill () { proc.kill('SIGKILL') },
  }
}

/** a bounded load through claylb, counting what each backend answered */
function load (lb: Claylb): { served: () => number, failures: string[], stop: () => Promise<void>, progress: (n: number) => Promise<boolean> } {
  const agent = new Agent({ connections: LOOPS })
  let served = 0
  let running = true
  const failures: string[] = []
  const deadline = Date.now() + MAX_SECONDS * 1000
  const loop = async (): Promise<void> => {
    while (running && served + failures.length < MAX_REQUESTS && Date.now() < deadline) {
      try {
        const res = await request(`${lb.url}/x`, { dispatcher: agent })
        const body = await res.body.text()
        if (res.statusCode === 200) served++
        else failures.push(`${res.statusCode} ${body.slice(0, 200)}`)
      } catch (err) { failures.push((err as Error).message) }
    }
  }
  const loops = Array.from({ length: LOOPS }, loop)
  return {
    served: () => served,
    failures,
    async stop () { running = false; await Promise.all(loops); await agent.close() },
    async progress (n) {
      const goal = served + n
      while (served < goal) {
        if (served + failures.length >= MAX_REQUESTS || Date.now() >= deadline) return false
        await sleep(20)
      }
      return true
    },
  }
}

/** until `pred` holds, the load going on meanwhile (bounded by its own limits) */
async function until (l: ReturnType<typeof load>, pred: () => boolean): Promise<boolean> {
  while (!pred()) if (!await l.progress(20)) return false
  return true
}

async function metric (lb: Claylb, pattern: RegExp): Promise<number> {
  const text = await (await request(`${lb.admin}/metrics`)).body.text()
  return Number(pattern.exec(text)?.[1] ?? 0)
}

const dnsConfig = (dnsPort: number, upstream: Record<string, unknown>, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  upstreams: [upstream],
  dns: { servers: [`127.0.0.1:${dnsPort}`], minRefreshMs: 100, maxRefreshMs: 300 },
  healthCheck: { intervalMs: 200 },
  log: { access: false },
  ...extra,
})

t.test('A records change under load: new hosts get traffic, the gone one drains, a dead DNS server keeps the last set; 0 failed', async (t) => {
  const b = await startBackends(['127.0.0.2', '127.0.0.3', '127.0.0.4'])
  t.teardown(() => b.closeAll())
  const dns = await startDnsmasq(t)
  dns.hosts(['127.0.0.2 app.test', '127.0.0.3 app.test'])
  const lb = await startClaylb({ config: dnsConfig(dns.port, { dns: `app.test:${b.port}` }) })
  t.teardown(() => lb.stop('SIGKILL'))
  const l = load(lb)
  const n = (a: string): number => b.count.get(a) ?? 0

  t.ok(await until(l, () => n('127.0.0.2') > 50 && n('127.0.0.3') > 50), 'both addresses of the first answer serve')
  t.equal(n('127.0.0.4'), 0, 'the address not in DNS gets nothing')

  // .2 leaves the records, .4 joins
  dns.hosts(['127.0.0.3 app.test', '127.0.0.4 app.test'])
  t.ok(await until(l, () => n('127.0.0.4') > 50), 'the new address gets traffic')
  // the removal came with the same answer; what .2 had in flight finished. It gets nothing more
  t.ok(await l.progress(100))
  const gone = n('127.0.0.2')
  t.ok(await l.progress(300))
  t.equal(n('127.0.0.2'), gone, 'the removed address gets no new request')
  await b.close('127.0.0.2') // and it can go away
  t.ok(await l.progress(300))

  // the DNS server dies: failures are counted, the last good set serves on
  dns.kill()
  const failedBefore = await metric(lb, /claylb_dns_resolutions_total\{dns="app\.test:\d+",result="failed"\} (\d+)/)
  let failed = failedBefore
  while (failed === failedBefore && await l.progress(50)) failed = await metric(lb, /claylb_dns_resolutions_total\{dns="app\.test:\d+",result="failed"\} (\d+)/)
  t.ok(failed > failedBefore, `failed resolutions are counted (${failed})`)
  const [three, four] = [n('127.0.0.3'), n('127.0.0.4')]
  t.ok(await l.progress(300))
  t.ok(n('127.0.0.3') > three && n('127.0.0.4') > four, 'the last good set keeps serving')
  t.ok(lb.logs.some((x) => x['msg'] === 'dns upstream did not resolve: keeping the last good set'), 'and it is logged')
  await l.stop()
  t.same(l.failures.slice(0, 10), [], `no request failed (${l.failures.length} of ${l.served() + l.failures.length})`)
})

t.test('SRV records with two proxy processes: the targets\' addresses follow their records; 0 failed', async (t) => {
  const b = await startBackends(['127.0.0.5', '127.0.0.6'])
  t.teardown(() => b.closeAll())
  const dns = await startDnsmasq(t, [`--srv-host=_http._tcp.app.test,web.app.test,${b.port},0,10`])
  dns.hosts(['127.0.0.5 web.app.test'])
  const lb = await startClaylb({ config: dnsConfig(dns.port, { dns: '_http._tcp.app.test', srv: true }, { listen: { processes: 2 } }) })
  t.teardown(() => lb.stop('SIGKILL'))
  const l = load(lb)
  const n = (a: string): number => b.count.get(a) ?? 0
  t.ok(await until(l, () => n('127.0.0.5') > 50), 'the SRV target serves (on the SRV port)')
  t.equal(n('127.0.0.6'), 0)
  dns.hosts(['127.0.0.5 web.app.test', '127.0.0.6 web.app.test'])
  t.ok(await until(l, () => n('127.0.0.6') > 50), 'an address added to the target serves too')
  const status = await (await request(`${lb.admin}/status`)).body.json() as { upstreams: Array<{ id: string }> }
  t.same(status.upstreams.map((u) => u.id).sort(), [`_http._tcp.app.test/127.0.0.5:${b.port}`, `_http._tcp.app.test/127.0.0.6:${b.port}`], 'named by the record and the address')
  await l.stop()
  t.same(l.failures.slice(0, 10), [], `no request failed (${l.failures.length} of ${l.served() + l.failures.length})`)
})
