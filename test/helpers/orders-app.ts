/**
 * Spawns test/fixtures/orders-app.mjs: a real backend process that counts order executions in Redis.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { childEnv, ROOT } from './claylb.js'

export interface OrdersApp {
  url: string
  proc: ChildProcess
  kill (signal?: NodeJS.Signals): Promise<void>
}

const running = new Set<ChildProcess>()
process.on('exit', () => { for (const p of running) p.kill('SIGKILL') })

export async function startOrdersApp (name: string, redis: { url?: string, cluster?: readonly string[] }, prefix = 'test:'): Promise<OrdersApp> {
  const env = childEnv({ NAME: name, PREFIX: prefix, ...(redis.cluster ? { REDIS_CLUSTER: redis.cluster.join(',') } : { REDIS_URL: redis.url }) })
  const proc = spawn(process.execPath, [join(ROOT, 'test', 'fixtures', 'orders-app.mjs')], { env, stdio: ['ignore', 'pipe', 'inherit'] })
  running.add(proc)
  const exited = new Promise<void>((resolve) => proc.on('exit', () => { running.delete(proc); resolve() }))
  const port = await new Promise<number>((resolve, reject) => {
    let buf = ''
    proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
      buf += d
      const m = /listening (\d+)/.exec(buf)
      if (m) resolve(Number(m[1]))
    })
    proc.once('exit', (code) => reject(new Error(`orders app exited (${code})`)))
  })
  return {
    url: `http://127.0.0.1:${port}`,
    proc,
    async kill (signal: NodeJS.Signals = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal)
      await exited
    },
  }
}
