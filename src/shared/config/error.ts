/**
 * @module config/error
 * A config that cannot be used: every problem with its path. Its own module, so the processes that
 * only run a config they were given (the proxy processes) never load the schema (zod) or YAML.
 */
import { ClaylbError } from '../errors.js'

export class ConfigError extends ClaylbError {
  constructor (readonly problems: readonly string[], readonly source?: string) {
    super('CLAYLB_ERR_CONFIG', `invalid config${source ? ` (${source})` : ''}:\n  ${problems.join('\n  ')}`)
  }
}
