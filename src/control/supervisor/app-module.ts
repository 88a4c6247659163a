/**
 * @module workers/app-module
 * `workers.app` → the absolute path a worker imports: `builtin:NAME` for the bundled apps, else a
 * path relative to claylb's working directory (workers run in their own directory, so it is
 * resolved before they start).
 */
import { existsSync } from 'node:fs'
import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ClaylbError } from '../../shared/errors.js'

const BUILTIN: Record<string, string> = {
  demo: fileURLToPath(new URL('../../app-side/demo/app.js', import.meta.url)),
}

export class AppNotFound extends ClaylbError {
  constructor (message: string) { super('CLAYLB_ERR_APP_NOT_FOUND', message) }
}

export function resolveApp (app: string, cwd = process.cwd()): string {
  if (app.startsWith('builtin:')) {
    const path = BUILTIN[app.slice('builtin:'.length)]
    if (path === undefined) throw new AppNotFound(`workers.app: unknown built-in app "${app}" (known: ${Object.keys(BUILTIN).map((k) => `builtin:${k}`).join(', ')})`)
    return path
  }
  const path = resolve(cwd, app)
  if (!existsSync(path)) throw new AppNotFound(`workers.app: ${path} does not exist`)
  return path
}
