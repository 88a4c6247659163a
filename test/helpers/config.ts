/**
 * The problems buildConfig reports for a raw config, [] when it is valid (any other error is thrown).
 */
import { buildConfig, ConfigError } from '../../src/shared/config/load.js'

export function configProblems (raw: unknown, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    buildConfig(raw, {}, env)
    return []
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems]
    throw err
  }
}
