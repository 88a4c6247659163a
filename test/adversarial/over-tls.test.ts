/**
 * The adversarial suite again, against the TLS listener: every file of this directory run as it is,
 * with CLAYLB_TEST_TLS=1 (test/helpers/transport.ts), so its claylb listens with listen.tls and
 * listen.http2 and its raw clients speak HTTP/1.1 inside TLS. Not a copy: the same tests, byte for byte.
 */
import t from 'tap'
import { readdirSync } from 'node:fs'
import { basename, join } from 'node:path'

if (process.env['CLAYLB_TEST_TLS'] === '1') {
  t.pass('already over TLS')
} else {
  const dir = import.meta.dirname
  const files = readdirSync(dir).filter((f) => f.endsWith('.test.ts') && f !== basename(import.meta.filename)).sort()
  t.ok(files.length >= 4, `${files.length} adversarial files: ${files.join(', ')}`)
  for (const f of files) {
    // the loaders tap gave this process (TypeScript) run the file the same way
    t.spawn(process.execPath, [...process.execArgv, join(dir, f)], { env: { ...process.env, CLAYLB_TEST_TLS: '1' } }, `${f} over TLS`)
  }
}
