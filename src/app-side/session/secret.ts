/**
 * @module session/secret
 * The signing secrets: a comma-separated list in the environment variable named by
 * `session.secretEnv` (the first signs, every one verifies, so a secret can rotate).
 */
import { randomBytes } from 'node:crypto'
import type { Logger } from '../../shared/log.js'
import { ClaylbError } from '../../shared/errors.js'

export const MIN_SECRET_LENGTH = 32

export class SessionSecretError extends ClaylbError {
  constructor (message: string) {
    super('CLAYLB_ERR_SESSION_SECRET', message)
  }
}

/**
 * The one rule for signing secrets, whoever gives them (the environment at the CLI, the options of
 * `createSessionStore` in a library user's server): at least one, each a string of at least
 * MIN_SECRET_LENGTH characters, so an HMAC key is never empty or guessable. `where` names the source.
 */
export function checkSecrets (secrets: unknown, where: string): string[] {
  if (!Array.isArray(secrets)) throw new SessionSecretError(`${where}: must be an array of strings, got ${secrets === null ? 'null' : typeof secrets}`)
  if (secrets.length === 0) throw new SessionSecretError(`${where}: at least one secret is needed`)
  secrets.forEach((s: unknown, i) => {
    if (typeof s !== 'string') throw new SessionSecretError(`${where}: secret #${i + 1} is not a string`)
    if (s.length < MIN_SECRET_LENGTH) throw new SessionSecretError(`${where}: secret #${i + 1} is shorter than ${MIN_SECRET_LENGTH} characters (${s.length})`)
  })
  return [...secrets] as string[]
}

/** The secrets in `env[name]`; undefined when unset. Short secrets are refused (checkSecrets). */
export function readSecrets (name: string, env: NodeJS.ProcessEnv = process.env): string[] | undefined {
  const raw = env[name]
  if (raw === undefined || raw.trim() === '') return undefined
  return checkSecrets(raw.split(',').map((s) => s.trim()).filter((s) => s.length > 0), name)
}

/**
 * At start, in the primary: with no secret configured, make a random one and put it in this process's
 * environment, which every worker inherits, so all workers sign and verify alike.
 */
export function ensureSessionSecret (name: string, logger: Logger, env: NodeJS.ProcessEnv = process.env): void {
  if (readSecrets(name, env)) return
  env[name] = randomBytes(32).toString('base64url')
  logger.warn({ env: name }, `${name} is not set: using a random session secret made at start; sessions survive neither a restart nor a second claylb instance`)
}
