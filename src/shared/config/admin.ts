/**
 * @module config/admin
 * The admin listener's tokens, resolved from where the config says they are (inline, a file, an
 * environment variable), and the rule that keeps the admin API from being open: a host other than
 * loopback needs a token, or anyone who reaches the port could reload, drain and recycle.
 */
import { isIP } from 'node:net'
import { fromEnv, fromFile, type Read } from './secret-source.js'

interface TokenSources { token?: string | undefined, tokenFile?: string | undefined, tokenEnv?: string | undefined }
interface AdminSettings {
  host: string
  port: number
  protectReads?: boolean | undefined
  token?: string | undefined
  tokenFile?: string | undefined
  tokenEnv?: string | undefined
  metricsToken?: string | undefined
  metricsTokenFile?: string | undefined
  metricsTokenEnv?: string | undefined
}

/** 127.0.0.0/8, ::1 (also IPv4-mapped) and localhost: reachable from this host only */
export function isLoopback (host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase()
  if (h === 'localhost' || h === '::1') return true
  const v4 = h.startsWith('::ffff:') ? h.slice(7) : h
  return isIP(v4) === 4 && v4.startsWith('127.')
}

/** one token from its three possible sources */
function resolveToken (key: string, s: TokenSources, env: NodeJS.ProcessEnv): Read {
  const given = [s.token !== undefined && key, s.tokenFile !== undefined && `${key}File`, s.tokenEnv !== undefined && `${key}Env`].filter(Boolean)
  if (given.length > 1) return [undefined, [`admin.${key}: give one of admin.${given.join(', admin.')}, not ${given.length}`]]
  if (s.tokenFile !== undefined) return fromFile(`admin.${key}File`, s.tokenFile)
  if (s.tokenEnv !== undefined) return fromEnv(`admin.${key}Env`, s.tokenEnv, env)
  return [s.token, []]
}

/** `admin` with `token` and `metricsToken` resolved from their file or variable, and every problem */
export function resolveAdmin<A extends AdminSettings> (admin: A, env: NodeJS.ProcessEnv): [A, string[]] {
  const [token, p1] = resolveToken('token', admin, env)
  const [metricsToken, p2] = resolveToken('metricsToken', {
    token: admin.metricsToken, tokenFile: admin.metricsTokenFile, tokenEnv: admin.metricsTokenEnv,
  }, env)
  const problems = [...p1, ...p2]
  if (token === undefined && p1.length === 0 && !isLoopback(admin.host)) {
    problems.push(`admin.host: ${JSON.stringify(admin.host)} is not a loopback address and no admin token is set, so anyone who ` +
      `reaches port ${admin.port} could POST /reload, drain upstreams and recycle workers. Set admin.token, admin.tokenFile or ` +
      'admin.tokenEnv (e.g. from a Kubernetes Secret), or bind admin.host: 127.0.0.1')
  }
  if (admin.protectReads === true && token === undefined && p1.length === 0) {
    problems.push('admin.protectReads: needs an admin token to protect the reads with (admin.token, admin.tokenFile or admin.tokenEnv)')
  }
  const out = { ...admin }
  if (token !== undefined) out.token = token
  if (metricsToken !== undefined) out.metricsToken = metricsToken
  return [out, problems]
}
