/**
 * What the macro runner puts in front of the backends, one at a time. Each target knows whether it can
 * run here (else a line telling the user how to get it) and how to start itself pinned on the proxy's
 * CPU. Native proxies get a generated config and are started in the foreground, so their pid is ours.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { commandVersion, hasCommand, spawnPinned } from './procs.mjs'

const BENCH = join(dirname(fileURLToPath(import.meta.url)), '..')
export const ROOT = join(BENCH, '..')
const SERVERS = join(BENCH, 'servers')

function node (script, args, ctx, extraNodeArgs = []) {
  // no accept grace on stop (claylb's shutdown.acceptGraceMs; nothing in front waits for /readyz), so a
  // run's claylb is gone when stopChild ends it
  return spawnPinned('proxy', process.execPath, [...extraNodeArgs, script, ...args], { logFile: join(ctx.tmp, `${ctx.id}.log`), env: { CLAYLB_ACCEPT_GRACE_MS: '0' } })
}

function nodeArgsFor (ctx) {
  return ctx.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${ctx.cpuProfDir}`] : []
}

/** Resolves once claylb's admin /readyz answers 200 (an upstream or a worker is available). */
async function claylbReady (ctx, timeoutMs = 30_000) {
  const until = Date.now() + timeoutMs
  for (;;) {
    const ok = await fetch(`http://127.0.0.1:${ctx.adminPort}/readyz`).then((r) => r.status === 200, () => false)
    if (ok) return
    if (Date.now() > until) throw new Error(`claylb not ready after ${timeoutMs} ms`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

/**
 * Ten routes a plain GET / falls through (each tests its host, path, methods or headers), then the
 * default pool: the routing table's whole cost on every request. Their pools are the same backends.
 */
function tenRoutes (ctx) {
  const pools = {}
  for (let i = 0; i < 10; i++) pools[`p${i}`] = { upstreams: ctx.upstreams.map((url) => ({ url })) }
  const matches = [
    { host: 'shop.example.com' }, { host: '*.internal.example' }, { pathPrefix: '/static/' },
    { pathPrefix: '/api/v2/', methods: ['POST', 'PUT'] }, { headers: { 'x-canary': 'yes' } },
    { host: '*.cdn.example', pathPrefix: '/img/' }, { pathPrefix: '/admin', headers: { authorization: true } },
    { methods: ['DELETE'] }, { host: 'api.example.org', pathPrefix: '/v1/' }, { pathPrefix: '/ws' },
  ]
  return { pools, routes: matches.map((match, i) => ({ match, pool: `p${i}` })) }
}

/**
 * `CLAYLB_BENCH_BEFORE=DIR`: a built checkout of an older claylb (e.g. `git archive <commit> | tar -x
 * -C DIR`, node_modules linked, `npx tsc`), run as the extra `claylb-before*` rows, for a before/after
 * in one run. Unset: those rows do not exist.
 */
export const BEFORE = process.env.CLAYLB_BENCH_BEFORE || null

function claylb (accessLog, root = ROOT, extra, tls = false) {
  return {
    tls,
    ready: claylbReady,
    version: () => `claylb ${JSON.parse(readText(join(root, 'package.json'))).version}${root === ROOT ? '' : ` (${root})`}`,
    missing: () => existsSync(join(root, 'dist', 'cli.js')) ? null : `${join(root, 'dist')} is missing: run \`npm run build\` (npm ci does it)`,
    start (ctx) {
      const config = {
        listen: { host: '127.0.0.1', port: ctx.port },
        admin: { host: '127.0.0.1', port: ctx.adminPort },
        upstreams: ctx.upstreams.map((url) => ({ url })),
        log: { level: 'info', access: accessLog },
        ...(extra ? extra(ctx) : {}),
        ...(ctx.claylbConfig ?? {}),
      }
      if (tls) config.listen.tls = { cert: ctx.tls.cert, key: ctx.tls.key }
      const file = join(ctx.tmp, `${ctx.id}.json`)
      writeFileSync(file, JSON.stringify(config, null, 2))
      return node(join(root, 'bin', 'claylb'), ['start', '--config', file], ctx, nodeArgsFor(ctx))
    },
  }
}

function readText (f) {
  try { return readFileSync(f, 'utf8') } catch { return '' }
}

/** The workers scenario: claylb spawning N workers of its demo app vs node:cluster with the same app. */
export const WORKER_COUNT = 2
export const WORKER_TARGETS = [
  {
    id: 'claylb-workers',
    short: `claylb --workers ${WORKER_COUNT} (log off)`,
    label: `claylb --workers ${WORKER_COUNT}, builtin:demo, log.access: false`,
    ...claylb(false),
  },
  {
    id: 'node-cluster',
    short: `node:cluster, ${WORKER_COUNT} workers`,
    label: `node:cluster (round-robin), ${WORKER_COUNT} workers of the same demo app`,
    version: () => `node ${process.version}`,
    missing: () => existsSync(join(ROOT, 'dist', 'demo', 'app.js')) ? null : 'dist/app-side/demo/app.js missing: run `npm run build`',
    start: (ctx) => node(join(SERVERS, 'cluster-demo.mjs'), [String(ctx.port), String(WORKER_COUNT)], ctx),
  },
]
WORKER_TARGETS[0].start = ((start) => (ctx) => start({ ...ctx, claylbConfig: { workers: { count: WORKER_COUNT, app: 'builtin:demo' }, ...(ctx.redisUrl ? { redis: { url: ctx.redisUrl } } : {}) } }))(WORKER_TARGETS[0].start)

/**
 * The processes scenario (issue 15): claylb with one proxy process vs two, each way of sharing the port
 * this Node has. Not pinned (two processes on one CPU would measure nothing): both rows run in the same
 * conditions, the backends and the load generator still on CPU 0. CPU is the whole tree's (primary too).
 */
const reusePort = (() => { const [a, b] = process.versions.node.split('.').map(Number); return a > 22 || (a === 22 && b >= 12) })()
function claylbProcesses (n, accept) {
  const base = claylb(false)
  return {
    id: `claylb-p${n}${accept ? `-${accept}` : ''}`,
    short: `claylb --processes ${n}${accept ? ` (${accept})` : ''}`,
    label: `claylb --processes ${n}${accept ? `, accept: ${accept}` : ''}, log.access: false, unpinned`,
    ...base,
    start (ctx) {
      const config = {
        listen: { host: '127.0.0.1', port: ctx.port, processes: n },
        admin: { host: '127.0.0.1', port: ctx.adminPort },
        upstreams: ctx.upstreams.map((url) => ({ url })),
        log: { level: 'info', access: false },
      }
      const file = join(ctx.tmp, `${ctx.id}.json`)
      writeFileSync(file, JSON.stringify(config, null, 2))
      return spawnPinned(null, process.execPath, [join(ROOT, 'bin', 'claylb'), 'start', '--config', file], { logFile: join(ctx.tmp, `${ctx.id}.log`), env: accept ? { CLAYLB_ACCEPT: accept } : {} })
    },
  }
}
export const PROCESS_TARGETS = [
  claylbProcesses(1),
  claylbProcesses(2, 'handoff'),
  claylbProcesses(2, 'shared'),
  claylbProcesses(2, 'round-robin'),
  ...(reusePort ? [claylbProcesses(2, 'reuseport')] : []),
  // the same step for nginx, in the same conditions: what a second process costs on this machine
  // whoever the proxy is
  nginx(false, { pinned: false }),
  nginx(false, { workers: 2, pinned: false }),
  nginx(false, { workers: 2, reuseport: true, pinned: false }),
]

/** Every target, in the order the table shows them. `group`: which rows a scenario may use. */
export const TARGETS = [
  {
    id: 'direct',
    short: 'direct (node:http alone)',
    label: 'direct (node:http backend alone, no proxy)',
    version: () => `node ${process.version}`,
    missing: () => null,
    // the backend itself takes the proxy's CPU: the floor a Node proxy cannot go under
    start: (ctx) => spawnPinned('proxy', process.execPath, [join(SERVERS, 'backend.mjs'), String(ctx.port), 'direct'], { logFile: join(ctx.tmp, 'direct.log') }),
    direct: true,
  },
  { id: 'claylb', short: 'claylb (access log on)', label: 'claylb (access log on, the default)', ...claylb(true) },
  { id: 'claylb-nolog', short: 'claylb (access log off)', label: 'claylb (log.access: false)', ...claylb(false) },
  { id: 'claylb-combined', short: 'claylb (log: combined)', label: 'claylb (log.access: { format: combined })', ...claylb({ format: 'combined' }) },
  { id: 'claylb-trace0', short: 'claylb, tracing 0 % (log off)', label: 'claylb, tracing: { sampleRatio: 0 }, log.access: false', ...claylb(false, ROOT, () => ({ tracing: { sampleRatio: 0 } })) },
  // the spans go to a backend's POST (it reads any body and answers 200): an OTLP endpoint that costs the proxy what a collector would
  { id: 'claylb-trace1', short: 'claylb, tracing 1 % (log off)', label: 'claylb, tracing: { sampleRatio: 0.01, otlp }, log.access: false', ...claylb(false, ROOT, (ctx) => ({ tracing: { sampleRatio: 0.01, otlp: `${ctx.upstreams[0]}/v1/traces` } })) },
  { id: 'claylb-routes-nolog', short: 'claylb, 10 routes (log off)', label: 'claylb with 10 routes the request falls through, then the default pool; log.access: false', ...claylb(false, ROOT, tenRoutes) },
  ...(BEFORE === null ? [] : [
    { id: 'claylb-before', short: 'claylb before (log on)', label: 'claylb BEFORE (CLAYLB_BENCH_BEFORE; access log on)', ...claylb(true, BEFORE) },
    { id: 'claylb-before-nolog', short: 'claylb before (log off)', label: 'claylb BEFORE (CLAYLB_BENCH_BEFORE; log.access: false)', ...claylb(false, BEFORE) },
  ]),
  {
    id: 'undici-minimal',
    short: 'minimal undici proxy',
    label: 'minimal undici proxy (Pool per backend, pool.stream)',
    version: () => `undici ${JSON.parse(readText(join(ROOT, 'node_modules', 'undici', 'package.json')) || '{}').version}`,
    missing: () => existsSync(join(ROOT, 'node_modules', 'undici')) ? null : 'undici missing: run `npm ci` at the repository root',
    start: (ctx) => node(join(SERVERS, 'undici-minimal.mjs'), [String(ctx.port), ...ctx.upstreams], ctx, nodeArgsFor(ctx)),
  },
  {
    id: 'http-proxy-agent',
    short: 'http-proxy + keep-alive agent',
    label: 'http-proxy with a keep-alive agent',
    version: () => `http-proxy ${JSON.parse(readText(join(BENCH, 'node_modules', 'http-proxy', 'package.json')) || '{}').version}`,
    missing: () => null,
    start: (ctx) => node(join(SERVERS, 'http-proxy.mjs'), [String(ctx.port), '--agent', ...ctx.upstreams], ctx),
  },
  {
    id: 'http-proxy',
    short: 'http-proxy (no agent)',
    label: 'http-proxy as most run it (no agent)',
    version: () => `http-proxy ${JSON.parse(readText(join(BENCH, 'node_modules', 'http-proxy', 'package.json')) || '{}').version}`,
    missing: () => null,
    start: (ctx) => node(join(SERVERS, 'http-proxy.mjs'), [String(ctx.port), ...ctx.upstreams], ctx),
  },
  nginx(false),
  haproxy(false),
]

/**
 * The TLS scenario: TLS to the client, plain HTTP/1.1 to the backends, keep-alive on both sides (the
 * handshake is paid once per connection, so the rows compare record encryption per request).
 * claylb without TLS is the first row, for the cost of TLS itself.
 */
export const TLS_TARGETS = [
  { id: 'claylb-nolog', short: 'claylb plain HTTP (log off)', label: 'claylb without TLS (log.access: false), for the difference', ...claylb(false) },
  { id: 'claylb-tls', short: 'claylb TLS (log on)', label: 'claylb, listen.tls (access log on)', ...claylb(true, ROOT, undefined, true) },
  { id: 'claylb-tls-nolog', short: 'claylb TLS (log off)', label: 'claylb, listen.tls, log.access: false', ...claylb(false, ROOT, undefined, true) },
  nginx(true),
  haproxy(true),
]

/**
 * Ten rate limits of which a plain GET / matches one (the last, keyed by the client address, its rate
 * far above what wrk sends, so nothing is refused): every limit's match is tested, one takes a token.
 * `scope`: where the matching one's bucket is (`global`: the run's private redis-server).
 */
function tenLimits (scope) {
  return (ctx) => {
    const matches = [
      { host: 'shop.example.com' }, { host: '*.internal.example' }, { pathPrefix: '/static/' },
      { pathPrefix: '/api/v2/', methods: ['POST', 'PUT'] }, { headers: { 'x-canary': 'yes' } },
      { host: '*.cdn.example', pathPrefix: '/img/' }, { pathPrefix: '/admin', headers: { authorization: true } },
      { methods: ['DELETE'] }, { host: 'api.example.org', pathPrefix: '/v1/' },
    ]
    return {
      rateLimits: [
        ...matches.map((match, i) => ({ name: `l${i}`, match, key: 'ip', rate: '100/s', scope: 'local' })),
        { name: 'all', key: 'ip', rate: '999999999/s', burst: 100000, scope },
      ],
      ...(ctx.redisUrl ? { redis: { url: ctx.redisUrl } } : {}),
    }
  }
}

/** plain GET without limits, with 10 limits (one matching) local, and global on Redis */
export const LIMIT_TARGETS = [
  { id: 'claylb-nolog', short: 'claylb, no limit (log off)', label: 'claylb (log.access: false), no rate limit', ...claylb(false) },
  { id: 'claylb-limits-nolog', short: 'claylb, 10 limits, 1 local matches', label: 'claylb with 10 rate limits, one matching (scope local); log.access: false', ...claylb(false, ROOT, tenLimits('local')) },
  { id: 'claylb-glimits-nolog', short: 'claylb, 10 limits, 1 global matches', label: 'claylb with 10 rate limits, one matching (scope global, leased from Redis); log.access: false', ...claylb(false, ROOT, tenLimits('global')) },
]

/** The start of an nginx.conf that keeps everything in `dir` (root may run it), up to inside `http {`. */
export function nginxPrelude (dir, workers) {
  return `
${process.getuid?.() === 0 ? 'user root;' : ''}
worker_processes ${workers};
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;`
}

/**
 * nginx. The processes scenario runs it unpinned like the claylb rows beside it, with 1 worker and with
 * `workers` > 1 processes sharing the port with `reuseport` (the kernel spreads connections by hash, as
 * claylb's reusePort) or, with `reuseport: false`, accepting on one shared socket (as claylb's
 * shared handle on Node 20).
 */
function nginx (tls, { workers = 1, reuseport = false, pinned = true } = {}) {
  const many = workers > 1
  const id = many ? `nginx-w${workers}${reuseport ? '-reuseport' : '-shared'}` : !pinned ? 'nginx-w1' : tls ? 'nginx-tls' : 'nginx'
  return {
    id,
    tls,
    short: `nginx${tls ? ' TLS' : ''} (${workers} worker${many ? `s, ${reuseport ? 'reuseport' : 'shared socket'}` : ''}, keepalive)`,
    label: `nginx, ${workers} worker${many ? `s, ${reuseport ? 'listen reuseport' : 'one shared listening socket'}` : ''}${pinned ? '' : ', unpinned'}, upstream keepalive${tls ? ', ssl on the listener' : ''}`,
    version: () => `nginx ${commandVersion('nginx', ['-v'], /\d+\.\d+\.\d+/)}`,
    missing: () => hasCommand('nginx') ? null : 'nginx not installed: `apt-get install -y nginx` (or brew install nginx) to add this row',
    start (ctx) {
      const dir = join(ctx.tmp, 'nginx')
      mkdirSync(dir, { recursive: true })
      const conf = join(dir, 'nginx.conf')
      writeFileSync(conf, `${nginxPrelude(dir, workers)}
  client_max_body_size 16m;
  keepalive_requests 1000000;
  upstream backends {
${ctx.upstreams.map((u) => `    server ${new URL(u).host};`).join('\n')}
    keepalive 32;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:${ctx.port}${reuseport ? ' reuseport' : ''}${tls ? ` ssl;\n    ssl_certificate ${ctx.tls.cert};\n    ssl_certificate_key ${ctx.tls.key}` : ''};
    location / {
      proxy_pass http://backends;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_request_buffering off;
    }
  }
}
`)
      return spawnPinned(pinned ? 'proxy' : null, 'nginx', ['-p', dir, '-c', conf, '-e', join(dir, 'error.log')], { logFile: join(ctx.tmp, `${id}.log`) })
    },
  }
}

function haproxy (tls) {
  return {
    id: tls ? 'haproxy-tls' : 'haproxy',
    tls,
    short: `HAProxy${tls ? ' TLS' : ''} (nbthread 1)`,
    label: `HAProxy, nbthread 1, http-reuse always${tls ? ', ssl crt on the bind' : ''}`,
    version: () => `HAProxy ${commandVersion('haproxy', ['-v'], /\d+\.\d+\.\d+/)}`,
    missing: () => hasCommand('haproxy') ? null : 'haproxy not installed: `apt-get install -y haproxy` (or brew install haproxy) to add this row',
    start (ctx) {
      const conf = join(ctx.tmp, 'haproxy.cfg')
      writeFileSync(conf, `
global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s
  option forwardfor
  http-reuse always
frontend fe
  bind 127.0.0.1:${ctx.port}${tls ? ` ssl crt ${ctx.tls.combined}` : ''}
  default_backend be
backend be
  balance roundrobin
${ctx.upstreams.map((u, i) => `  server b${i} ${new URL(u).host}`).join('\n')}
`)
      return spawnPinned('proxy', 'haproxy', ['-db', '-f', conf], { logFile: join(ctx.tmp, 'haproxy.log') })
    },
  }
}
