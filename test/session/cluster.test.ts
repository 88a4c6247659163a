import t from 'tap'
import { startRedisCluster } from '../helpers/redis.js'
import { sessionSuite } from '../helpers/session-suite.js'

const cluster = await startRedisCluster()
t.teardown(() => cluster.close())

// Every guarantee again, on a real 3-master Cluster: a CROSSSLOT error would fail these requests.
t.test('sessions on a 3-master Redis Cluster', (t) => sessionSuite(t, { cluster: cluster.urls }))
