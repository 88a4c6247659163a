/**
 * The CLI's own words: --version, --help (top level and per command), unknown commands.
 */
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { BIN, ROOT, childEnv } from './helpers/claylb.js'

const run = (...args: string[]): { status: number | null, stdout: string, stderr: string } => {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: ROOT, env: childEnv(), encoding: 'utf8', timeout: 90_000 })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

t.test('--version prints the package version', async (t) => {
  const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }
  for (const flag of ['--version', '-v', 'version']) {
    const r = run(flag)
    t.equal(r.status, 0, `${flag}: exit 0`)
    t.equal(r.stdout, `claylb ${version}\n`, `${flag}: claylb ${version}`)
  }
})

t.test('-h / --help: the usage with every start flag, exit 0, nothing started', async (t) => {
  for (const args of [['-h'], ['--help'], ['help'], ['start', '-h'], ['start', '--port', '1', '--help'], ['check-config', '-h']]) {
    const r = run(...args)
    t.equal(r.status, 0, `${args.join(' ')}: exit 0`)
    for (const flag of ['--config', '--host', '--port', '--admin-port', '--upstream', '--workers', '--app', '--redis', 'check-config', '--version']) {
      t.ok(r.stdout.includes(flag), `${args.join(' ')}: names ${flag}`)
    }
  }
})

t.test('an unknown command or flag: the usage on stderr, exit 2', async (t) => {
  const cmd = run('frobnicate')
  t.equal(cmd.status, 2)
  t.match(cmd.stderr, /^unknown command: frobnicate\nusage:/)
  const flag = run('start', '--frobnicate')
  t.equal(flag.status, 2)
  t.match(flag.stderr, /frobnicate/)
  t.match(flag.stderr, /usage:/)
})

t.test('every README section that --help names exists', async (t) => {
  const headings = new Set(readFileSync(join(ROOT, 'README.md'), 'utf8').split('\n').filter((l) => /^#{1,6} /.test(l)).map((l) => l.replace(/^#+ /, '').trim()))
  const named = [...run('--help').stdout.matchAll(/README "([^"]+)"/g)].map((m) => m[1]!)
  t.ok(named.length >= 1, `--help names ${named.length} section(s)`)
  for (const s of named) t.ok(headings.has(s), `README has a section "${s}"`)
})
