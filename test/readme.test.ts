/**
 * The README runs as written. Every fenced block carries a marker on the line before it,
 * `<!-- readme-test: KIND [args] -->`, naming how this test runs it; a block without one, or with an
 * unknown kind, fails here, so a new snippet cannot go untested by accident.
 *   config              `claylb check-config` on the block → ok
 *   config-lines        the same, each line on its own (alternatives written one per line)
 *   yaml: WHY           a YAML file that is not claylb's (parsed only)
 *   worker-app [session] the block as `--app` of `claylb start --workers 2`; GET / answers JSON
 *                       (session: twice with the cookie, the count goes up, and the health probes that
 *                       made the workers ready left no session in Redis: only that one exists)
 *   session-server      the program with REDIS_URL, SESSION_SECRET and PORT: visits count per cookie,
 *                       /login regenerates, /healthz creates no session
 *   middleware          the program with REDIS_URL and PORT: the idempotency protocol end to end
 *   npm-start           `npm start` (the README's first command), then every sh-after-npm-start block
 *   sh-after-npm-start [expect=TEXT]  run by bash against it; exit 0 and TEXT in the output
 *   tls-config          a config naming PEM files: test certificates are made at those paths (a private
 *                       CA), `check-config` passes from that directory, then `claylb start` with it (the
 *                       upstreams replaced by a real backend) answers over HTTP/2 and HTTP/1.1 with TLS
 *   install             bash in this checkout (the clone): `npm pack`, a new app installs the tarball,
 *                       runs claylb's bin and imports it
 *   skip: WHY           not run, and WHY says why (and where it is covered instead)
 * Programs run from a directory inside the checkout, so `import … from 'claylb'` resolves to this
 * package (Node's self-reference) and express/fastify/ioredis to its node_modules.
 */
import t, { type Test } from 'tap'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { dirname, join } from 'node:path'
import { echoName, startBackend } from './helpers/backend.js'
import { Pki } from './helpers/pki.js'
import { h1, h2, h2session } from './helpers/tls-client.js'
import { parse } from 'yaml'
import { BIN, ROOT, childEnv, startClaylb } from './helpers/claylb.js'
import { req, sleep } from './helpers/http.js'
import { freePort, startRedis, type RedisServer } from './helpers/redis.js'

interface Block { line: number, lang: string, kind: string, args: string, code: string }

function blocks (): Block[] {
  const lines = readFileSync(join(ROOT, 'README.md'), 'utf8').split('\n')
  const out: Block[] = []
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S*)/.exec(lines[i]!)
    if (open === null) continue
    let end = i + 1
    while (end < lines.length && !lines[end]!.startsWith('```')) end++
    const marker = /^<!-- readme-test: ([a-z-]+):?\s*(.*?) -->$/.exec(lines[i - 1] ?? '')
    out.push({ line: i + 1, lang: open[1]!, kind: marker?.[1] ?? '', args: marker?.[2] ?? '', code: lines.slice(i + 1, end).join('\n') + '\n' })
    i = end
  }
  return out
}

const KINDS = new Set(['config', 'config-lines', 'tls-config', 'yaml', 'worker-app', 'session-server', 'middleware', 'npm-start', 'sh-after-npm-start', 'install', 'skip'])
const ALL = blocks()
const of = (kind: string): Block[] => ALL.filter((b) => b.kind === kind)
const SECRET = 'readme-test-secret-0123456789abcdefghijklmnop'

/** a directory inside the checkout (ignored by git) for the programs */
const WORK = join(ROOT, '.tap', 'readme')
mkdirSync(WORK, { recursive: true })
const program = (b: Block): string => {
  const file = join(mkdtempSync(join(WORK, 'b-')), `readme-line-${b.line}.mjs`)
  writeFileSync(file, b.code)
  return file
}

const accepts = (port: number): Promise<boolean> => new Promise((resolve) => {
  const s = net.connect(port, '127.0.0.1')
  s.once('connect', () => { s.destroy(); resolve(true) })
  s.once('error', () => resolve(false))
})

async function run (t: Test, file: string, env: NodeJS.ProcessEnv): Promise<{ proc: ChildProcess, port: number, output: () => string }> {
  const port = await freePort()
  const proc = spawn(process.execPath, [file], { cwd: WORK, env: childEnv({ PORT: String(port), ...env }), stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  proc.stdout!.on('data', (d: Buffer) => { output += d.toString() })
  proc.stderr!.on('data', (d: Buffer) => { output += d.toString() })
  t.teardown(() => { proc.kill('SIGKILL') })
  for (let i = 0; !(await accepts(port)); i++) {
    if (proc.exitCode !== null) throw new Error(`the program exited (${proc.exitCode}) before listening: ${output}`)
    if (i > 600) throw new Error(`the program did not listen on PORT=${port} within 30 s: ${output}`)
    await sleep(50)
  }
  return { proc, port, output: () => output }
}

const checkConfig = (yamlText: string): { status: number | null, out: string } => {
  const file = join(mkdtempSync(join(WORK, 'c-')), 'config.yaml')
  writeFileSync(file, yamlText)
  const r = spawnSync(process.execPath, [BIN, 'check-config', file], { cwd: ROOT, env: childEnv(), encoding: 'utf8', timeout: 90_000 })
  return { status: r.status, out: r.stdout + r.stderr }
}

let redis: RedisServer
t.before(async () => { redis = await startRedis({ useEnv: false }) })
t.teardown(() => redis.close())

t.test('every README block has a marker naming how it is tested', async (t) => {
  t.ok(ALL.length >= 10, `${ALL.length} blocks`)
  const bad = ALL.filter((b) => !KINDS.has(b.kind) || (b.kind === 'skip' && b.args.length < 10) || (b.kind === 'yaml' && b.args.length < 5))
  t.same(bad.map((b) => `README.md:${b.line} (${b.lang}) ${b.kind === '' ? 'has no <!-- readme-test: … --> marker' : `marker "${b.kind} ${b.args}"`}`), [], 'no unmarked block, no unknown kind, every skip says why')
  for (const kind of ['config', 'tls-config', 'worker-app', 'session-server', 'middleware', 'npm-start', 'sh-after-npm-start', 'install']) t.ok(of(kind).length > 0, `there are ${kind} blocks`)
})

t.test('config blocks pass check-config', async (t) => {
  for (const b of of('config')) {
    const r = checkConfig(b.code)
    t.equal(r.status, 0, `README.md:${b.line}: ${r.out.trim()}`)
  }
  for (const b of of('config-lines')) {
    for (const line of b.code.split('\n').filter((l) => l.trim() !== '' && !l.trim().startsWith('#'))) {
      const r = checkConfig(line)
      t.equal(r.status, 0, `README.md:${b.line}: ${line.split('#')[0]!.trim()}: ${r.out.trim()}`)
    }
  }
  for (const b of of('yaml')) t.doesNotThrow(() => parse(b.code), `README.md:${b.line} is YAML (${b.args})`)
})

t.test('TLS config blocks: certificates made at their paths, check-config passes, HTTP/2 and HTTP/1.1 answer', async (t) => {
  for (const b of of('tls-config')) {
    const where = `README.md:${b.line}`
    const config = parse(b.code) as { listen: { tls: { cert: string, key: string, sni?: Array<{ hosts: string[], cert: string, key: string }> } }, tls?: { ca?: string } }
    const pki = new Pki()
    const dir = mkdtempSync(join(WORK, 'tls-'))
    const place = (rel: string, from: string): string => {
      const to = join(dir, rel)
      mkdirSync(dirname(to), { recursive: true })
      copyFileSync(from, to)
      return to
    }
    const main = pki.issue(['localhost'])
    const abs = structuredClone(config)
    abs.listen.tls.cert = place(config.listen.tls.cert, main.cert)
    abs.listen.tls.key = place(config.listen.tls.key, main.key)
    for (const [i, e] of (config.listen.tls.sni ?? []).entries()) {
      const leaf = pki.issue(e.hosts)
      abs.listen.tls.sni![i]!.cert = place(e.cert, leaf.cert)
      abs.listen.tls.sni![i]!.key = place(e.key, leaf.key)
    }
    if (config.tls?.ca !== undefined) abs.tls!.ca = place(config.tls.ca, pki.ca)
    writeFileSync(join(dir, 'lb.yaml'), b.code)
    const r = spawnSync(process.execPath, [BIN, 'check-config', 'lb.yaml'], { cwd: dir, env: childEnv(), encoding: 'utf8', timeout: 90_000 })
    t.equal(r.status, 0, `${where}: check-config from the directory holding the files: ${r.stdout}${r.stderr}`)
    const backend = await startBackend(echoName('readme-tls'))
    const lb = await startClaylb({ args: ['--upstream', backend.url], config: { ...abs, healthCheck: { enabled: false } } })
    try {
      const port = Number(new URL(lb.url).port)
      const s = await h2session(port, 'localhost', pki.caPem)
      t.equal((await h2(s)).body, 'readme-tls', `${where}: served over HTTP/2`)
      s.close()
      t.equal((await h1(port, { servername: 'localhost', ca: pki.caPem })).body, 'readme-tls', `${where}: and HTTP/1.1 over TLS`)
    } finally {
      await lb.stop('SIGKILL')
      await backend.close()
    }
  }
})

t.test('worker apps run under claylb start --workers 2 --app', async (t) => {
  for (const b of of('worker-app')) {
    const prefix = `readme${b.line}:`
    const lb = await startClaylb({ args: ['--workers', '2', '--app', program(b)], config: { log: { access: false }, redis: { keyPrefix: prefix } }, env: { REDIS_URL: redis.url, SESSION_SECRET: SECRET } })
    try {
      const first = await req(`${lb.url}/`)
      t.equal(first.status, 200, `README.md:${b.line}: GET / → 200 ${first.body}`)
      const body = JSON.parse(first.body) as Record<string, unknown>
      t.match(String(body['worker']), /^w\d+$/, `README.md:${b.line}: answered by a worker`)
      if (b.args.includes('session')) {
        const cookie = String(([] as string[]).concat(first.headers['set-cookie'] ?? [])[0]).split(';')[0]!
        const second = JSON.parse((await req(`${lb.url}/`, { headers: { cookie } })).body) as { count: number }
        t.same([body['count'], second.count], [1, 2], `README.md:${b.line}: the session's count goes up across workers`)
        // every worker answered healthCheck.healthyThreshold probes before it got a request: a probe
        // that made a session would have left one here per probe
        const sessions = spawnSync('redis-cli', ['-u', redis.url, '--scan', '--pattern', `${prefix}sess:*`], { encoding: 'utf8' }).stdout.trim().split('\n')
        const id = cookie.split('=')[1]!.split('.')[0]!
        t.same(sessions, [`${prefix}sess:{${id}}`], `README.md:${b.line}: the health probes made no session, only the client did`)
      }
    } finally {
      t.equal(await lb.stop(), 0, `README.md:${b.line}: claylb drained and exited 0`)
    }
  }
})

t.test('the session server counts visits per cookie, regenerates on /login, and gives probes no session', async (t) => {
  for (const b of of('session-server')) {
    const prefix = `readme${b.line}:`
    const code = { ...b, code: b.code.replace("keyPrefix: 'claylb:'", `keyPrefix: '${prefix}'`) }
    t.not(code.code, b.code, 'its keyPrefix is made private to this test')
    const { port, proc } = await run(t, program(code), { REDIS_URL: redis.url, SESSION_SECRET: SECRET })
    const base = `http://127.0.0.1:${port}`
    t.equal((await req(`${base}/healthz`)).body, 'ok')
    const keys = spawnSync('redis-cli', ['-u', redis.url, '--scan', '--pattern', `${prefix}*`], { encoding: 'utf8' }).stdout.trim()
    t.equal(keys, '', 'a probe created no session in Redis')
    const a = await req(`${base}/`)
    const cookie = String(([] as string[]).concat(a.headers['set-cookie'] ?? [])[0]).split(';')[0]!
    t.same(JSON.parse(a.body), { visits: 1, user: null })
    t.same(JSON.parse((await req(`${base}/`, { headers: { cookie } })).body), { visits: 2, user: null })
    const login = await req(`${base}/login`, { headers: { cookie } })
    t.same(JSON.parse(login.body), { visits: 3, user: 'ada' }, '/login keeps the data and sets the user')
    const renewed = String(([] as string[]).concat(login.headers['set-cookie'] ?? [])[0]).split(';')[0]!
    t.not(renewed, cookie, 'with a new session id')
    t.same(JSON.parse((await req(`${base}/`, { headers: { cookie: renewed } })).body), { visits: 4, user: 'ada' })
    t.equal(proc.exitCode, null, 'still running')
  }
})

t.test('the middleware examples: the idempotency protocol end to end', async (t) => {
  for (const b of of('middleware')) {
    const { port, proc, output } = await run(t, program(b), { REDIS_URL: redis.url })
    const base = `http://127.0.0.1:${port}`
    const post = (key: string | undefined, body: string): ReturnType<typeof req> =>
      req(`${base}/orders`, { method: 'POST', headers: { 'content-type': 'application/json', ...(key === undefined ? {} : { 'idempotency-key': `"${key}"` }) }, body })
    const key = `readme-${b.line}-${Date.now()}`
    const first = await post(key, '{"amount":10}')
    t.equal(first.status, 201, `README.md:${b.line}: first POST → 201 ${first.body}`)
    const order = JSON.parse(first.body) as { id: string, amount: number }
    t.equal(order.amount, 10, 'the order carries the body')
    t.type(order.id, 'string', 'and an id')
    const again = await post(key, '{ "amount": 10 }')
    t.same([again.status, again.headers['idempotent-replayed'], again.body], [201, 'true', first.body], `README.md:${b.line}: the retry is the first answer, replayed`)
    const other = await post(key, '{"amount":11}')
    t.equal(other.status, 422, `README.md:${b.line}: the same key with another body → 422`)
    // two integers past 2^53 that JSON.parse makes one number: a fingerprint of the parsed body
    // would replay the first order for the second body; the raw bytes tell them apart
    const big = `${key}-2^53`
    t.equal((await post(big, '{"amount":9007199254740993}')).status, 201, `README.md:${b.line}: a large integer`)
    const near = await post(big, '{"amount":9007199254740992}')
    t.equal(near.status, 422, `README.md:${b.line}: the same key with a body that differs past 2^53 → 422, not a replay (${near.status} ${near.body.slice(0, 80)})`)
    const none = await post(undefined, '{"amount":10}')
    t.equal(none.status, 400, `README.md:${b.line}: no key on a required route → 400`)
    const get = await req(`${base}/`)
    t.ok(get.status >= 200 && get.status < 500, `README.md:${b.line}: GET / is answered (${get.status}), not a crash`)
    t.equal(proc.exitCode, null, `README.md:${b.line}: still running: ${output().slice(0, 300)}`)
  }
})

t.test('npm start, then the README\'s commands against it', async (t) => {
  for (const port of [8080, 9180]) {
    t.notOk(await accepts(port), `port ${port} (config/default.yaml) is free for npm start`)
  }
  const npm = spawn('npm', ['start'], { cwd: ROOT, env: childEnv({ REDIS_URL: redis.url, SESSION_SECRET: SECRET }), stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  const exited = new Promise<number | null>((resolve) => npm.on('exit', resolve))
  t.teardown(() => { try { process.kill(-npm.pid!, 'SIGKILL') } catch { /* gone */ } })
  let out = ''
  npm.stdout!.on('data', (d: Buffer) => { out += d.toString() })
  npm.stderr!.on('data', (d: Buffer) => { out += d.toString() })
  while (!out.includes('"msg":"listening"')) {
    if (npm.exitCode !== null) throw new Error(`npm start exited ${npm.exitCode}: ${out}`)
    await sleep(100)
  }
  const home = await req('http://127.0.0.1:8080/')
  t.equal(home.status, 200, `npm start serves the demo on :8080: ${home.body}`)
  for (const b of of('sh-after-npm-start')) {
    const r = spawnSync('bash', ['-euo', 'pipefail', '-c', b.code], { encoding: 'utf8', timeout: 60_000 })
    t.equal(r.status, 0, `README.md:${b.line} ran: ${r.stderr}`)
    const expect = /expect=(.*)$/.exec(b.args)?.[1]
    if (expect !== undefined) t.ok(r.stdout.includes(expect), `README.md:${b.line} printed ${expect}: ${r.stdout.slice(-300)}`)
  }
  // SIGTERM to claylb itself (the pid in its listening line), as a process manager would: it drains,
  // exits 0, and npm exits with its code
  const listening = JSON.parse(out.split('\n').find((l) => l.includes('"msg":"listening"'))!) as { pid: number }
  process.kill(listening.pid, 'SIGTERM')
  t.equal(await exited, 0, 'claylb drained and exited 0 on SIGTERM, and so did npm start')
})

t.test('install: the README packs this checkout and a new app installs the tarball; no line installs the unpublished name', async (t) => {
  const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }
  const tarball = `claylb-${version}.tgz`
  for (const b of of('install')) {
    t.ok(b.code.includes(tarball), `README.md:${b.line} names the tarball npm pack writes (${tarball})`)
    t.teardown(() => { rmSync(join(ROOT, tarball), { force: true }) })
    // this checkout is the clone. No scripts: npm pack's prepare would rebuild dist/ under the tests
    // running beside this one (it is built already)
    const r = spawnSync('bash', ['-euo', 'pipefail', '-c', b.code], {
      cwd: ROOT,
      env: childEnv({ npm_config_ignore_scripts: 'true', npm_config_prefer_offline: 'true', npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' }),
      encoding: 'utf8',
      timeout: 300_000,
    })
    t.equal(r.status, 0, `README.md:${b.line} ran: ${r.stderr.slice(-800)}`)
    t.match(r.stdout, `claylb ${version}`, 'the installed bin runs')
    const loaded = /claylb exports (\d+) names/.exec(r.stdout)
    t.ok(loaded !== null && Number(loaded[1]) > 10, `the app imports claylb from the tarball: ${r.stdout.slice(-300)}`)
  }
  // every other install line in the README installs the tarball: `npm install claylb` is E404
  const lines = readFileSync(join(ROOT, 'README.md'), 'utf8').split('\n')
  const installsName = (l: string): boolean => (/npm (?:install|i|add)\s+([^`#·(]*)/.exec(l)?.[1] ?? '').split(/\s+/).some((w) => /^claylb(@|$)/.test(w))
  const bare = lines.map((l, i) => [i + 1, l] as const).filter(([, l]) => installsName(l) && !l.includes('answers E404'))
  t.same(bare.map(([n, l]) => `README.md:${n}: ${l.trim()}`), [], 'no README line installs claylb from the registry')
})
