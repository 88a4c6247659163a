/**
 * @module tls/certificates
 * PEM files → secure contexts: the listener's certificates (a default pair plus SNI pairs picked by
 * hostname, exact or `*.` wildcard) and the CA trusted for https:// upstreams. Files are read here and
 * only here, at start and on reload; every problem names the config path and the file.
 */
import { readFileSync } from 'node:fs'
import tls, { type SecureContext } from 'node:tls'
import type { Config } from '../config/schema.js'
import { ConfigError } from '../config/error.js'

type ListenTls = NonNullable<Config['listen']['tls']>

/** The certificates a TLS listener serves, built from one config; immutable (a reload builds a new set). */
export class CertificateSet {
  constructor (
    /** options for `server.setSecureContext`: the pair served when the client sends no matching SNI */
    readonly fallback: { cert: Buffer, key: Buffer },
    readonly fallbackContext: SecureContext,
    /** lower-case exact hostnames */
    private readonly exact: ReadonlyMap<string, SecureContext>,
    /** `*.example.com` stored as `example.com`: matches exactly one more label */
    private readonly wildcard: ReadonlyMap<string, SecureContext>,
  ) {}

  /** the context for a client's SNI name: exact first, then wildcard, else the default pair */
  pick (servername: string): SecureContext {
    const name = servername.toLowerCase()
    const hit = this.exact.get(name)
    if (hit !== undefined) return hit
    const dot = name.indexOf('.')
    if (dot > 0) {
      const wild = this.wildcard.get(name.slice(dot + 1))
      if (wild !== undefined) return wild
    }
    return this.fallbackContext
  }
}

function readPem (path: string, file: string, problems: string[]): Buffer | undefined {
  try {
    const b = readFileSync(file)
    if (!b.includes('-----BEGIN ')) {
      problems.push(`${path}: ${file} is not a PEM file (no "-----BEGIN" line)`)
      return undefined
    }
    return b
  } catch (err) {
    problems.push(`${path}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
    return undefined
  }
}

function contextOf (path: string, certFile: string, keyFile: string, problems: string[]): { cert: Buffer, key: Buffer, context: SecureContext } | undefined {
  const cert = readPem(`${path}.cert`, certFile, problems)
  const key = readPem(`${path}.key`, keyFile, problems)
  if (cert === undefined || key === undefined) return undefined
  try {
    return { cert, key, context: tls.createSecureContext({ cert, key }) }
  } catch (err) {
    // OpenSSL's words: "key values mismatch", "bad decrypt", "no start line"…
    problems.push(`${path}: ${certFile} and ${keyFile} do not make a certificate and its key: ${(err as Error).message}`)
    return undefined
  }
}

/** Build a listener's certificates; every problem is collected, then thrown as one ConfigError. */
export function loadCertificates (t: ListenTls): CertificateSet {
  const problems: string[] = []
  const main = contextOf('listen.tls', t.cert, t.key, problems)
  const exact = new Map<string, SecureContext>()
  const wildcard = new Map<string, SecureContext>()
  t.sni.forEach((entry, i) => {
    const pair = contextOf(`listen.tls.sni.${i}`, entry.cert, entry.key, problems)
    if (pair === undefined) return
    for (const h of entry.hosts) {
      const name = h.toLowerCase().replace(/\.$/, '')
      if (name.startsWith('*.')) wildcard.set(name.slice(2), pair.context)
      else exact.set(name, pair.context)
    }
  })
  if (problems.length > 0 || main === undefined) throw new ConfigError(problems)
  return new CertificateSet({ cert: main.cert, key: main.key }, main.context, exact, wildcard)
}

/** What an https:// upstream connection is made with (a pool's, shared by its connections and health checks). */
export interface UpstreamTls {
  /** Node's root CAs plus `tls.ca`; undefined: Node's defaults */
  ca: string[] | undefined
  servername: string | undefined
  rejectUnauthorized: boolean
  /** one context for every upstream connection (built once: a handshake then costs no PEM parsing) */
  context: SecureContext
}

/** `at`: where the settings are in the config (`tls`, `pools.api.tls`), for the error messages */
export function loadUpstreamTls (c: Config['tls'], at = 'tls'): UpstreamTls {
  const problems: string[] = []
  let ca: string[] | undefined
  if (c.ca !== undefined) {
    const pem = readPem(`${at}.ca`, c.ca, problems)
    if (pem !== undefined) {
      // `ca` replaces Node's trusted roots; the configured CA is trusted besides them, not instead
      ca = [...tls.rootCertificates, pem.toString('latin1')]
    }
  }
  let context: SecureContext | undefined
  if (problems.length === 0) {
    try {
      context = tls.createSecureContext(ca === undefined ? {} : { ca })
    } catch (err) {
      problems.push(`${at}.ca: ${c.ca} holds no usable certificate: ${(err as Error).message}`)
    }
  }
  if (problems.length > 0 || context === undefined) throw new ConfigError(problems)
  return { ca, servername: c.servername, rejectUnauthorized: c.rejectUnauthorized, context }
}

/** Every file a config names, checked (for `claylb check-config` and the start). */
export function checkTlsFiles (config: Config): void {
  const problems: string[] = []
  const checks = [() => { if (config.listen.tls !== undefined) loadCertificates(config.listen.tls) }, () => loadUpstreamTls(config.tls)]
  // a pool's own tls (merged over the top level's): only one that differs names files of its own
  for (const [name, p] of Object.entries(config.pools)) if (p.tls.ca !== config.tls.ca) checks.push(() => loadUpstreamTls(p.tls, `pools.${name}.tls`))
  for (const f of checks) {
    try { f() } catch (err) {
      if (!(err instanceof ConfigError)) throw err
      problems.push(...err.problems)
    }
  }
  if (problems.length > 0) throw new ConfigError(problems)
}

/**
 * Each distinct upstream TLS setting loaded once: pools that inherit the top level's share its context
 * (one PEM parse, one session cache per setting, not per pool).
 */
export class UpstreamTlsCache {
  private readonly byKey = new Map<string, UpstreamTls>()

  get (c: Config['tls'], at: string): UpstreamTls {
    const key = JSON.stringify([c.ca, c.servername, c.rejectUnauthorized])
    let t = this.byKey.get(key)
    if (t === undefined) this.byKey.set(key, t = loadUpstreamTls(c, at))
    return t
  }
}
