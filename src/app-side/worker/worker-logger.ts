/**
 * @module workers/worker-logger
 * pino's line format (level numbers, time, pid, msg) without pino: loading pino costs a worker about
 * 30 ms of its start-up, and a worker only writes a few lines in its life.
 */
import type { WorkerLogger } from './context.js'

const LEVELS = { debug: 20, info: 30, warn: 40, error: 50 } as const

export function createWorkerLogger (base: Record<string, unknown>, minLevel: string): WorkerLogger {
  const min = (LEVELS as Record<string, number>)[minLevel] ?? (minLevel === 'silent' || minLevel === 'fatal' ? 60 : 0)
  const prefix = JSON.stringify({ pid: process.pid, name: 'worker', ...base }).slice(1, -1)
  const at = (level: number) => (obj: object | string, msg?: string): void => {
    if (level < min) return
    const fields = typeof obj === 'string' ? { msg: obj } : { ...serialize(obj), msg }
    process.stdout.write(`{"level":${level},"time":${Date.now()},${prefix},${JSON.stringify(fields).slice(1)}\n`)
  }
  return { debug: at(LEVELS.debug), info: at(LEVELS.info), warn: at(LEVELS.warn), error: at(LEVELS.error) }
}

function serialize (obj: object): Record<string, unknown> {
  if (obj instanceof Error) return { err: { type: obj.name, message: obj.message, stack: obj.stack } }
  const o = obj as Record<string, unknown>
  const err = o['err']
  return err instanceof Error ? { ...o, err: { type: err.name, message: err.message, stack: err.stack } } : o
}
