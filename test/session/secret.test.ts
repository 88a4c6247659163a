/**
 * The signing secrets: the library (createSessionStore) refuses exactly what the CLI (readSecrets on
 * SESSION_SECRET) refuses. The bug: createSessionStore took an empty secret, so a server whose
 * SESSION_SECRET was unset or short signed its cookies with a guessable key.
 */
import t from 'tap'
import fc from 'fast-check'
import { Redis } from 'ioredis'
import { createSessionStore, readSecrets, SessionSecretError } from '../../src/app-side/session/index.js'
import { MIN_SECRET_LENGTH } from '../../src/app-side/session/secret.js'

// never connected: the store only defines its scripts on it
const redis = new Redis({ lazyConnect: true })
t.teardown(() => redis.disconnect())

const construct = (secrets: unknown): unknown => {
  try {
    createSessionStore({ redis, secrets: secrets as string[] })
    return 'ok'
  } catch (err) {
    return err
  }
}

t.test('empty, short or missing secrets: a SessionSecretError that says what is wrong', async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    [[''], /secret #1 is shorter than 32 characters \(0\)/],
    [[], /at least one secret is needed/],
    [['x'.repeat(31)], /secret #1 is shorter than 32 characters \(31\)/],
    [['y'.repeat(40), 'short'], /secret #2 is shorter than 32/],
    [undefined, /must be an array of strings, got undefined/],
    ['z'.repeat(40), /must be an array of strings, got string/],
    [['a'.repeat(40), 7], /secret #2 is not a string/],
  ]
  for (const [secrets, message] of cases) {
    const err = construct(secrets)
    t.ok(err instanceof SessionSecretError, `${JSON.stringify(secrets)}: SessionSecretError (${String(err)})`)
    t.match((err as Error).message, /^createSessionStore: secrets: /, 'names where the secrets came from')
    t.match((err as Error).message, message)
  }
  t.equal(construct(['s'.repeat(MIN_SECRET_LENGTH)]), 'ok', 'exactly the minimum is enough')
})

t.test('the library accepts exactly the secret lists the CLI accepts', async (t) => {
  const secret = fc.string({ minLength: 0, maxLength: 40 }).filter((s) => !s.includes(',') && s.trim() === s)
  fc.assert(fc.property(fc.array(secret, { minLength: 1, maxLength: 4 }), (secrets) => {
    let cli: string
    try {
      cli = readSecrets('SESSION_SECRET', { SESSION_SECRET: secrets.join(',') }) === undefined ? 'unset' : 'ok'
    } catch (err) {
      cli = err instanceof SessionSecretError ? 'refused' : `crash: ${String(err)}`
    }
    // the CLI drops empty entries of the comma list; an unset or blank variable is unset (it then makes
    // a random secret), a list of nothing but commas is refused; a library caller who passes an empty
    // string is refused, never defaulted
    const given = secrets.filter((s) => s.length > 0)
    const lib = construct(given)
    const libResult = lib === 'ok' ? 'ok' : lib instanceof SessionSecretError ? 'refused' : `crash: ${String(lib)}`
    if (given.length === 0) return libResult === 'refused' && cli === (secrets.join(',').trim() === '' ? 'unset' : 'refused')
    return libResult === cli
  }), { numRuns: 300 })
  t.pass('300 secret lists: same verdict')
})
