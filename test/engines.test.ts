/**
 * The Node versions claylb supports (package.json `engines`) are the ones CI runs, and no runtime
 * dependency declares an engine range that excludes one of them (npm ci would warn, and the dependency
 * may use an API that Node does not have).
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import semver from 'semver'
import { ROOT } from './helpers/claylb.js'

interface LockEntry { dev?: boolean, devOptional?: boolean, optional?: boolean, engines?: { node?: string } | string[] }
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string } }
const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> }

/** the oldest release of each supported major (.ci/run tests the newest of each) */
const OLDEST = ['20.18.1', '22.0.0', '24.0.0']

t.test('engines: exactly the majors CI runs, from 20.18.1', async (t) => {
  const range = pkg.engines.node
  for (const v of OLDEST) t.ok(semver.satisfies(v, range), `${v} satisfies ${range}`)
  for (const v of ['20.18.0', '18.20.0', '21.7.0', '23.0.0', '25.0.0']) t.notOk(semver.satisfies(v, range), `${v} does not`)
  t.ok(semver.satisfies(process.versions.node, range), `this run's node ${process.versions.node} is supported`)
})

t.test('no runtime dependency excludes a supported Node', async (t) => {
  const runtime = Object.entries(lock.packages).filter(([path, e]) => path !== '' && e.dev !== true)
  t.ok(runtime.length > 10, `${runtime.length} runtime packages in package-lock.json`)
  const bad: string[] = []
  for (const [path, e] of runtime) {
    const node = Array.isArray(e.engines) ? undefined : e.engines?.node
    if (node === undefined) continue
    for (const v of [...OLDEST, process.versions.node]) {
      if (!semver.satisfies(v, node)) bad.push(`${path.replace(/^.*node_modules\//, '')} wants node ${node}: excludes ${v}`)
    }
  }
  t.same(bad, [], 'every runtime dependency runs on every supported Node')
})
