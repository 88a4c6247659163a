import t from 'tap'
import { spawnSync } from 'node:child_process'
import { writeFileSync, mkdtempSync, copyFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ROOT } from './helpers/claylb.js'

// Docker does not run here; Debian's docker-compose validates the file against the compose schema
// without a daemon. .ci/run installs it.
const compose = spawnSync('docker-compose', ['version', '--short'], { encoding: 'utf8' })
if (compose.error) throw new Error('docker-compose is not on the PATH: apt-get install -y docker-compose (used only to validate docker-compose.yml)')

t.test('docker-compose.yml is valid', async (t) => {
  const r = spawnSync('docker-compose', ['-f', join(ROOT, 'docker-compose.yml'), 'config', '-q'], { encoding: 'utf8', cwd: ROOT })
  t.equal(r.status, 0, r.stderr)
})

t.test('the validator does reject a broken file (the check can fail)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'claylb-compose-'))
  copyFileSync(join(ROOT, 'docker-compose.yml'), join(dir, 'ok.yml'))
  writeFileSync(join(dir, 'bad.yml'), 'services:\n  redis:\n    image: redis\n    healthcheck: { interval: [1] }\n    nonsense_key: 1\n')
  const r = spawnSync('docker-compose', ['-f', join(dir, 'bad.yml'), 'config', '-q'], { encoding: 'utf8', cwd: dir })
  t.not(r.status, 0)
})

t.test('compose runs Redis with a healthcheck and claylb after it', async (t) => {
  const r = spawnSync('docker-compose', ['-f', join(ROOT, 'docker-compose.yml'), 'config'], { encoding: 'utf8', cwd: ROOT })
  t.match(r.stdout, /redis:[\s\S]*healthcheck:[\s\S]*redis-cli/)
  t.match(r.stdout, /claylb:[\s\S]*condition: service_healthy/)
})
