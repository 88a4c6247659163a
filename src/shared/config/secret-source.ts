/**
 * @module config/secret-source
 * A secret named by the config but kept outside it: in an environment variable or a file (a mounted
 * Kubernetes Secret, a Docker secret). Each read gives the value or the problem, with the key's path.
 */
import { readFileSync } from 'node:fs'

export type Read = [value: string | undefined, problems: string[]]

/** the variable's value, trimmed; a problem at `path` when it is unset or empty */
export function fromEnv (path: string, name: string, env: NodeJS.ProcessEnv): Read {
  const value = env[name]?.trim()
  return value ? [value, []] : [undefined, [`${path}: the environment variable ${name} is not set or empty`]]
}

/** the file's text without the newline that ends it (`echo token > file`, a Secret) */
export function fromFile (path: string, file: string): Read {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    return [undefined, [`${path}: cannot read ${file}: ${(err as Error).message}`]]
  }
  const value = text.trim()
  return value === '' ? [undefined, [`${path}: ${file} is empty`]] : [value, []]
}
