/**
 * A steady stream of GETs through claylb, recording who answered each and when.
 */
import type { Test } from 'tap'
import { Agent, request } from 'undici'
import type { Claylb } from '../helpers/claylb.js'
import { sleep } from '../helpers/http.js'

export interface Answer { status: number, worker: string, sentAt: number, doneAt: number, error?: string }

export interface LoadResult {
  answers: Answer[]
  failed: Answer[]
  byWorker: Record<string, number>
}

export interface LoadOptions {
  total: number
  concurrency?: number
  /** pause between one answer and the next request of a lane */
  gapMs?: number
  path?: string
  /** called after each answer (e.g. to kill a worker at the 100th) */
  onAnswer?: (a: Answer, n: number) => void | Promise<void>
  /** ends the stream early when it returns true */
  stop?: () => boolean
}

export async function steadyLoad (base: string, o: LoadOptions): Promise<LoadResult> {
  const agent = new Agent({ keepAliveTimeout: 2000, connections: 16 })
  const answers: Answer[] = []
  let sent = 0
  const lane = async (): Promise<void> => {
    while (sent < o.total && !o.stop?.()) {
      sent++
      const a: Answer = { status: 0, worker: '', sentAt: Date.now(), doneAt: 0 }
      try {
        const r = await request(`${base}${o.path ?? '/'}`, { dispatcher: agent })
        await r.body.text()
        a.status = r.statusCode
        a.worker = String(r.headers['x-worker-id'] ?? '')
      } catch (err) {
        a.error = (err as Error).message
      }
      a.doneAt = Date.now()
      answers.push(a)
      await o.onAnswer?.(a, answers.length)
      if (o.gapMs) await sleep(o.gapMs)
    }
  }
  await Promise.all(Array.from({ length: o.concurrency ?? 1 }, lane))
  await agent.close()
  const byWorker: Record<string, number> = {}
  for (const a of answers) if (a.worker) byWorker[a.worker] = (byWorker[a.worker] ?? 0) + 1
  return { answers, failed: answers.filter((a) => a.status !== 200), byWorker }
}

export interface WorkerRow { id: string, slot: number, pid: number, generation: number, state: string, url: string, requests: number }
export interface Status { generation: number, workers: WorkerRow[], upstreams: Array<{ id: string, healthy: boolean }> }

/** GET /status, checked: a 200 with a workers array, or an error saying what came instead */
export async function status (admin: string): Promise<Status> {
  const r = await request(`${admin}/status`)
  const body = await r.body.text()
  let v: Partial<Status> | undefined
  try { v = JSON.parse(body) as Partial<Status> } catch { /* said below */ }
  if (r.statusCode !== 200 || v === undefined || !Array.isArray(v.workers)) throw new Error(`expected 200 with a workers array from ${admin}/status, got ${r.statusCode}: ${body.slice(0, 500)}`)
  return v as Status
}

/** poll until pred holds (bounded) */
export async function until<T> (fn: () => Promise<T>, pred: (v: T) => boolean, timeoutMs = 15_000, what = 'condition'): Promise<T> {
  const end = Date.now() + timeoutMs
  for (;;) {
    const v = await fn()
    if (pred(v)) return v
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(v)}`)
    await sleep(50)
  }
}

/** every stopped worker got no request after it was told to drain, by its own count */
export function assertNoRequestAfterDrain (t: Test, lb: Claylb, ids: string[]): void {
  for (const id of ids) {
    const stopped = lb.logs.find((l) => l['msg'] === 'worker stopped' && l['worker'] === id)
    t.ok(stopped, `${id} stopped`)
    if (!stopped) continue
    t.equal(stopped['exit'], 'exit code 0', `${id} exited by itself after its drain`)
    t.equal(stopped['requests'], stopped['dispatchedAtDrain'], `${id}: its own count ${stopped['requests']} = what the proxy had sent it when it was told to drain`)
    t.equal(stopped['dispatched'], stopped['dispatchedAtDrain'], `${id}: the proxy sent it nothing after`)
  }
}
