/**
 * The adversarial suite again, against the TLS listener: a file of test/adversarial run as it is, with
 * CLAYLB_TEST_TLS=1 (test/helpers/transport.ts), so its claylb listens with listen.tls and listen.http2
 * and its raw clients speak HTTP/1.1 inside TLS. Not a copy: the same tests, byte for byte.
 * One twin file per adversarial file (not one file running them all in turn): tap's jobs balance them,
 * and none comes near tap's per-file time-out.
 */
import t from 'tap'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'

export const ADVERSARIAL = join(import.meta.dirname, '..')

/** the adversarial files the twins must cover */
export const adversarialFiles = (): string[] => readdirSync(ADVERSARIAL).filter((f) => f.endsWith('.test.ts')).sort()

export function overTls (file: string): void {
  t.ok(adversarialFiles().includes(file), `${file} is an adversarial file`)
  // the loaders tap gave this process (TypeScript) run the file the same way
  t.spawn(process.execPath, [...process.execArgv, join(ADVERSARIAL, file)], { env: { ...process.env, CLAYLB_TEST_TLS: '1' } }, `${file} over TLS`)
}
