import t from 'tap'
import { startRedis } from '../helpers/redis.js'
import { sessionSuite } from '../helpers/session-suite.js'
import { startSessionApp, sidOf, call } from '../helpers/session-app.js'
import { buildConfig, ConfigError } from '../../src/shared/config/load.js'
import { createRedis, closeRedis, waitReady } from '../../src/shared/redis/index.js'

// private: the command counts below must see only this file's commands
const redis = await startRedis({ useEnv: false })
t.teardown(() => redis.close())

t.test('sessions on a standalone Redis', (t) => sessionSuite(t, { url: redis.url }))

t.test('session config: bounds and messages', async (t) => {
  const c = buildConfig({}, {}, {})
  t.match(c.session, { cookie: 'sid', secretEnv: 'SESSION_SECRET', ttlSeconds: 1800, maxBytes: 65536, secure: 'auto' })
  t.equal(buildConfig({ session: { maxBytes: 0, secure: true } }, {}, {}).session.maxBytes, 0, '0 = no limit')
  const problems = (raw: unknown): readonly string[] => {
    try { buildConfig(raw, {}, {}); return [] } catch (err) { return (err as ConfigError).problems }
  }
  t.same(problems({ session: { maxBytes: -1 } }), ['session.maxBytes: must be a non-negative integer'])
  t.same(problems({ session: { secure: 'maybe' } }), ['session.secure: must be true, false or "auto"'])
})

t.test('a streamed response: saved before its first byte, and a change made after it saved before its end', async (t) => {
  const client = createRedis(buildConfig({ redis: { url: redis.url } }, {}, {}).redis, 'app')
  t.teardown(() => closeRedis(client))
  await waitReady(client, 5000)
  const app = await startSessionApp({ redis: client, keyPrefix: 'stream:' })
  t.teardown(() => app.close())
  const r = await call(app.url, 'POST', '/stream')
  t.equal(r.body, 'abc', 'the body, in order')
  const c = sidOf(r)
  t.ok(c, 'the new session\'s cookie went out with the headers')
  t.same((await call(app.url, 'GET', '/session', c)).data, { before: 1, after: 2 })
})
