import t from 'tap'
import { startRedis } from '../helpers/redis.js'
import { sessionSuite } from '../helpers/session-suite.js'

const redis = await startRedis()
t.teardown(() => redis.close())

t.test('sessions on a standalone Redis', (t) => sessionSuite(t, { url: redis.url }))
