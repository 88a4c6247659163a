/**
 * What a proxy process loads at its start. It is forked at claylb's start and again whenever one dies,
 * so its start-up is paid for by every replacement: it runs a config the primary already validated
 * and never checks health or probes workers, so it must not load the config schema (zod), YAML, undici
 * or ioredis (loaded with the first Redis client, when the config needs one). Together they were
 * most of its start on a loaded machine. Read from the build's static imports (dist/).
 */
import { readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import t from 'tap'
import { ROOT } from '../helpers/claylb.js'

/** every package a module statically imports, directly or through the project's own modules */
function packagesOf (entry: string): Map<string, string> {
  const seen = new Set<string>()
  const packages = new Map<string, string>()
  const walk = (file: string): void => {
    if (seen.has(file)) return
    seen.add(file)
    const src = readFileSync(file, 'utf8')
    for (const m of src.matchAll(/^(import|export)\s(?!type\b)[^'"]*?from\s+'([^']+)'|^import\s+'([^']+)'/gm)) {
      const spec = m[2] ?? m[3]!
      if (spec.startsWith('.')) walk(resolve(dirname(file), spec))
      else if (!spec.startsWith('node:')) {
        const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!
        if (!packages.has(name)) packages.set(name, file.slice(ROOT.length + 1))
      }
    }
  }
  walk(entry)
  return packages
}

t.test('a proxy process loads only pino at its start (prom-client with the first scrape)', async (t) => {
  const packages = packagesOf(join(ROOT, 'dist', 'data', 'process', 'proxy-main.js'))
  t.same([...packages.keys()].sort(), ['pino'], `packages: ${JSON.stringify(Object.fromEntries(packages))}`)
})

t.test('the walk sees packages (the primary loads the config schema and YAML)', async (t) => {
  const packages = packagesOf(join(ROOT, 'dist', 'cli.js'))
  t.ok(packages.has('zod') && packages.has('yaml'), `packages: ${[...packages.keys()].join(', ')}`)
})
