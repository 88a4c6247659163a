/**
 * `idempotency.waitReplicas` on a Redis Cluster: the WAIT must run on the primary serving the key's
 * slot (a keyless command would go to any node). A real 3-primary cluster where only one primary has
 * a replica: keys on its slots are claimed, keys on the others are refused and released.
 */
import t from 'tap'
import { execFileSync, spawn } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { IdempotencyCore } from '../../src/shared/idempotency/core.js'
import { NotReplicatedError, RedisStore } from '../../src/shared/idempotency/redis-store.js'
import { connectCluster } from '../helpers/ioredis.js'
import { freePort, startRedisCluster } from '../helpers/redis.js'
import { sleep } from '../helpers/http.js'

const cli = (port: number, ...args: string[]): string => execFileSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
/** a reply, or '' while the server is not up yet */
const tryCli = (port: number, ...args: string[]): string => { try { return cli(port, ...args) } catch { return '' } }

t.test('store on a cluster: WAIT at the primary of the key\'s slot', async (t) => {
  const cluster = await startRedisCluster()
  t.teardown(() => cluster.close())
  const ports = cluster.urls.map((u) => Number(new URL(u).port))
  const withReplica = ports[0]!

  // one replica, for the first primary only
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), `claylb-cluster-replica-${port}-`))
  const replica = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir,
    '--cluster-enabled', 'yes', '--cluster-config-file', join(dir, 'nodes.conf'), '--cluster-node-timeout', '2000'], { stdio: 'ignore' })
  t.teardown(() => { replica.kill('SIGKILL') })
  for (let i = 0; tryCli(port, 'ping').trim() !== 'PONG'; i++) { if (i > 100) throw new Error('replica did not start'); await sleep(50) }
  const masterId = cli(withReplica, 'cluster', 'myid').trim()
  execFileSync('redis-cli', ['--cluster', 'add-node', `127.0.0.1:${port}`, `127.0.0.1:${withReplica}`, '--cluster-slave', '--cluster-master-id', masterId], { stdio: 'ignore' })
  for (let i = 0; !cli(port, 'info', 'replication').includes('master_link_status:up'); i++) {
    if (i > 300) throw new Error('the replica did not sync')
    await sleep(50)
  }

  const client = await connectCluster(cluster.urls)
  t.teardown(() => client.disconnect())
  const store = new RedisStore(client, { keyPrefix: 'wrc:', waitReplicas: 1, waitTimeoutMs: 300 })
  const core = new IdempotencyCore(store, { leaseMs: 5000, ttlMs: 60_000, maxResponseBytes: 1024, waitMs: 0 })

  const ranges = cli(withReplica, 'cluster', 'nodes').split('\n').find((l) => l.includes('myself'))!.split(' ').slice(8)
  const onReplicated = (key: string): boolean => {
    const slot = Number(cli(withReplica, 'cluster', 'keyslot', key).trim())
    return ranges.some((r) => { const [a, b] = r.split('-').map(Number); return slot >= a! && slot <= (b ?? a)! })
  }
  let claimed = 0
  let refused = 0
  for (let i = 0; i < 24; i++) {
    const key = `k${i}`
    const replicated = onReplicated(store.keyOf(core.recordId('s', key)))
    const r = await core.begin('s', key, 'fp').then((b) => b, (err: unknown) => err)
    if (replicated) {
      t.equal((r as { kind?: string }).kind, 'proceed', `${key}: its primary has a replica: claimed`)
      claimed++
    } else {
      t.ok(r instanceof NotReplicatedError, `${key}: its primary has none: refused`)
      t.equal(await client.exists(store.keyOf(core.recordId('s', key))), 0, `${key}: and released`)
      refused++
    }
  }
  t.ok(claimed > 0 && refused > 0, `keys on both kinds of primary: ${claimed} claimed, ${refused} refused`)
})
