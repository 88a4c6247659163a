/**
 * The proxy-level idempotency suite on a real 3-master Redis Cluster: two claylb instances and two
 * backends sharing it.
 */
import t from 'tap'
import { startRedisCluster } from '../helpers/redis.js'
import { httpConformance } from './http-conformance.js'
import { startStack, type Stack } from './stack.js'

t.test('conformance on a 3-master Redis Cluster', async (t) => {
  const cluster = await startRedisCluster()
  t.teardown(() => cluster.close())
  const s: Stack = await startStack(t, { cluster: cluster.urls })
  httpConformance(t, () => s.target)
})
