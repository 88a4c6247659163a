/**
 * The access log's `idempotency` field on a keyed route, end to end with a real redis-server:
 * executed, then replayed (one request id each, the replay not carrying the first answer's echo),
 * conflict for the same key with another body, nothing on an unkeyed route.
 */
import t from 'tap'
import { startBackend } from '../helpers/backend.js'
import { startClaylb } from '../helpers/claylb.js'
import { req } from '../helpers/http.js'
import { startRedis } from '../helpers/redis.js'

t.test('executed, replayed, conflict', async (t) => {
  const redis = await startRedis({ useEnv: false })
  t.teardown(() => redis.close())
  const b = await startBackend((rq, res) => {
    rq.resume()
    rq.on('end', () => res.setHeader('x-request-id', String(rq.headers['x-request-id'])).end('made'))
  })
  t.teardown(() => b.close())
  const c = await startClaylb({
    args: ['--upstream', b.url],
    config: {
      listen: { processes: 1 }, redis: { url: redis.url }, idempotency: { routes: [{ match: 'POST /orders', required: true }] },
      log: { access: { fields: ['method', 'path', 'status', 'idempotency', 'requestId'] } },
    },
  })
  t.teardown(() => c.stop())
  const key = `obs-${process.pid}`
  const post = (body: string): ReturnType<typeof req> => req(`${c.url}/orders`, { method: 'POST', body, headers: { 'idempotency-key': key, 'content-type': 'application/json' } })
  const first = await post('{"a":1}')
  const again = await post('{"a":1}')
  const other = await post('{"a":2}')
  await req(`${c.url}/plain`)
  t.equal(again.headers['idempotent-replayed'], 'true')
  t.not(again.headers['x-request-id'], first.headers['x-request-id'], 'the replay has its own id')
  t.notOk(Array.isArray(again.headers['x-request-id']), 'one id header on a replay')
  await c.waitForLog((l) => l['path'] === '/plain')
  const lines = c.logs.filter((l) => l['msg'] === 'request')
  t.same(lines.map((l) => [l['path'], l['status'], l['idempotency']]), [
    ['/orders', 200, 'executed'], ['/orders', 200, 'replayed'], ['/orders', other.status, 'conflict'], ['/plain', 200, undefined],
  ])
  t.same(lines.map((l) => l['requestId']), [first.headers['x-request-id'], again.headers['x-request-id'], other.headers['x-request-id'], lines[3]!['requestId']])
})
