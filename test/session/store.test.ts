import t from 'tap'
import { startRedis } from '../helpers/redis.js'
import { sessionSuite } from '../helpers/session-suite.js'

const redis = await startRedis()
t.teardown(() => redis.close())

t.test('sessions on a standalone Redis', (t) => sessionSuite(t, { url: redis.url }))

t.test('session config: bounds and messages', async (t) => {
  const { buildConfig, ConfigError } = await import('../../src/config/load.js')
  const c = buildConfig({}, {}, {})
  t.match(c.session, { cookie: 'sid', secretEnv: 'SESSION_SECRET', ttlSeconds: 1800, maxBytes: 65536, secure: 'auto' })
  t.equal(buildConfig({ session: { maxBytes: 0, secure: true } }, {}, {}).session.maxBytes, 0, '0 = no limit')
  const problems = (raw: unknown): readonly string[] => {
    try { buildConfig(raw, {}, {}); return [] } catch (err) { return (err as InstanceType<typeof ConfigError>).problems }
  }
  t.same(problems({ session: { maxBytes: -1 } }), ['session.maxBytes: must be a non-negative integer'])
  t.same(problems({ session: { secure: 'maybe' } }), ['session.secure: must be true, false or "auto"'])
})
