/**
 * @module cli
 * `claylb start [flags]`, `claylb check-config FILE`, `--version`, `--help`. The only module that touches signals and exit codes.
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { ConfigError, loadConfig, type ConfigOverrides } from './shared/config/load.js'
import { checkTlsFiles } from './shared/tls/certificates.js'
import { createLogger } from './shared/log.js'
import { createControlPlane } from './control/control-plane.js'
import { createDataPlane } from './data/data-plane.js'
import { InProcessDataPlane } from './control/process/in-process.js'
import { redisAuth } from './shared/redis/client.js'
import { prepareStateTier, redisNeed, StateTierStartError, type StateTier } from './shared/redis/embedded.js'
import { ensureSessionSecret, SessionSecretError } from './app-side/session/secret.js'
import { proxyProcessCount } from './control/process/count.js'
import { ProxyProcesses } from './control/process/primary.js'

const USAGE = `usage:
  claylb start [options]        run the proxy (and its workers, when it has no upstreams or --workers N)
  claylb check-config FILE      validate a config file: each problem on its own line with its path
  claylb --version              print the version
  claylb --help                 print this help

options of start (each overrides the config file):
  -c, --config FILE     YAML config file (see README "Config reference")
      --host H          proxy listen address (listen.host)
      --port N          proxy listen port (listen.port)
      --admin-port N    admin API port (admin.port)
      --upstream URL    a static upstream; repeat for more (upstreams)
      --workers N       spawn N worker processes (workers.count)
      --app MODULE      the module the workers run (workers.app; default builtin:demo)
      --redis URL       Redis for sessions and idempotency (redis.url)
      --processes N|auto  proxy processes accepting on the port (listen.processes; default auto)
  -h, --help            print this help

signals: SIGTERM drains (/readyz 503, accepting for shutdown.acceptGraceMs, then in-flight requests
  finish) and exits 0; SIGINT drains without the accept grace; SIGHUP re-reads the config and rolls the workers
  (README "Reload: what applies live"); the admin API: README "Admin API".
`

/** the version in package.json, read once when asked (it sits beside dist/ in every install) */
function version (): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
  return pkg.version
}

export async function main (argv: string[]): Promise<number | undefined> {
  const [command, ...rest] = argv
  switch (command) {
    case 'start':
      if (rest.includes('-h') || rest.includes('--help')) return help()
      return start(rest)
    case 'check-config':
      if (rest.includes('-h') || rest.includes('--help')) return help()
      return checkConfig(rest)
    case '-h': case '--help': case 'help': return help()
    case '-v': case '--version': case 'version':
      process.stdout.write(`claylb ${version()}\n`)
      return 0
    default:
      process.stderr.write(`${command ? `unknown command: ${command}\n` : ''}${USAGE}`)
      return 2
  }
}

function help (): number {
  process.stdout.write(USAGE)
  return 0
}

function checkConfig (args: string[]): number {
  const file = args[0]
  if (!file || args.length > 1) {
    process.stderr.write('usage: claylb check-config FILE\n')
    return 2
  }
  try {
    const config = loadConfig(file)
    checkTlsFiles(config)
    for (const d of config.deprecations) process.stdout.write(`warning: ${d}\n`)
    process.stdout.write(`${file}: ok\n`)
    return 0
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    for (const p of err.problems) process.stdout.write(`${p}\n`)
    return 1
  }
}

function intFlag (name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined
  const n = Number(v)
  if (!Number.isInteger(n) || n < 0) throw new ConfigError([`--${name}: must be a non-negative integer`])
  return n
}

function processesFlag (v: string): 'auto' | number {
  if (v === 'auto') return v
  const n = Number(v)
  if (!Number.isInteger(n) || n < 1) throw new ConfigError(['--processes: must be "auto" or a positive integer'])
  return n
}

async function start (args: string[]): Promise<number | undefined> {
  let config
  let configFile: string | undefined
  let configOverrides: ConfigOverrides = {}
  try {
    const { values } = parseArgs({
      args,
      options: {
        config: { type: 'string', short: 'c' },
        host: { type: 'string' },
        port: { type: 'string' },
        'admin-port': { type: 'string' },
        upstream: { type: 'string', multiple: true },
        workers: { type: 'string' },
        app: { type: 'string' },
        redis: { type: 'string' },
        processes: { type: 'string' },
      },
      strict: true,
    })
    const overrides: ConfigOverrides = {}
    if (values.host !== undefined) overrides.host = values.host
    const port = intFlag('port', values.port)
    if (port !== undefined) overrides.port = port
    const adminPort = intFlag('admin-port', values['admin-port'])
    if (adminPort !== undefined) overrides.adminPort = adminPort
    if (values.upstream) overrides.upstreams = values.upstream
    const workers = intFlag('workers', values.workers)
    if (workers !== undefined) overrides.workers = workers
    if (values.app !== undefined) overrides.app = values.app
    if (values.redis !== undefined) overrides.redis = values.redis
    if (values.processes !== undefined) overrides.processes = processesFlag(values.processes)
    config = loadConfig(values.config, overrides)
    checkTlsFiles(config)
    // a password file that cannot be read is a config error now, not a Redis that never answers
    if (redisNeed(config) !== 'none') redisAuth(config.redis)
    configFile = values.config
    configOverrides = overrides
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`)
      return 1
    }
    process.stderr.write(`${(err as Error).message}\n${USAGE}`)
    return 2
  }

  const logger = createLogger(config.log.level)
  // once, here: the proxy processes and reloads load the config again and stay quiet about it
  for (const d of config.deprecations) logger.warn({ code: 'CONFIG_DEPRECATED' }, d)
  let tier: StateTier
  try {
    tier = await prepareStateTier(config, logger)
    if (redisNeed(config) !== 'none') ensureSessionSecret(config.session.secretEnv, logger)
  } catch (err) {
    if (!(err instanceof StateTierStartError) && !(err instanceof SessionSecretError)) throw err
    logger.fatal({ code: err.code }, err.message)
    process.stderr.write(`${err.message}\n`)
    return 1
  }
  config = tier.config
  let app
  let addresses
  // 1: one process, both planes, no IPC; more: this process is the primary, the control plane only,
  // and the data plane runs in the proxy processes (control/process/primary.ts)
  const processes = proxyProcessCount(config)
  try {
    const first = config
    app = createControlPlane(config, logger, {
      // SIGHUP re-reads the same file with the same flags on top
      reloadConfig: () => tier.apply(loadConfig(configFile, configOverrides)),
      dataPlane: (view) => processes > 1
        ? new ProxyProcesses(view, logger, processes)
        : new InProcessDataPlane(createDataPlane(first, { logger, clusters: view.pools, tlsCache: view.tlsCache })),
    })
    addresses = await app.start()
  } catch (err) {
    logger.fatal({ err }, 'start failed')
    process.stderr.write(`claylb: start failed: ${(err as Error).message}\n`)
    await app?.stop().catch(() => {})
    await tier.stop()
    return 1
  }
  logger.info({ proxy: addresses.proxy, admin: addresses.admin, upstreams: app.cluster.hosts.length, processes }, 'listening')

  // A closed stdout (the reader went away) must never keep the process from draining and exiting.
  const say = (fn: () => void): void => { try { fn() } catch { /* stdout gone */ } }
  process.stdout.on('error', () => {})
  let stopping = false
  const shutdown = (signal: string): void => {
    if (stopping) return
    stopping = true
    // SIGINT is a person at a terminal: no balancer in front to wait for
    const stopped = app!.stop(signal === 'SIGINT' ? { acceptGraceMs: 0 } : {}).then(() => tier.stop())
    say(() => logger.info({ signal, inflight: app!.dataPlane.inflight }, 'draining'))
    stopped.then(() => {
      say(() => logger.info('stopped'))
      process.exit(0)
    }, (err: unknown) => {
      say(() => logger.error({ err }, 'stop failed'))
      process.exit(1)
    })
  }
  process.on('SIGTERM', () => shutdown('SIGTERM'))
  process.on('SIGINT', () => shutdown('SIGINT'))
  // logrotate's postrotate (nginx's USR1): the access log file is opened again; a listener also keeps
  // Node from starting its inspector on this signal
  process.on('SIGUSR1', () => {
    if (stopping) return
    logger.info({ signal: 'SIGUSR1' }, 'reopening the access log')
    app!.reopenLogs()
  })
  process.on('SIGHUP', () => {
    if (stopping) return
    logger.info({ signal: 'SIGHUP', generation: app!.generation }, 'reloading')
    void app!.reload()
  })
  return undefined
}
