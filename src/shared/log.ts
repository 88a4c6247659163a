/**
 * @module log
 * pino, one JSON object a line on stdout. Life-cycle lines are written synchronously (a test or an
 * operator waits for "listening"); the per-request access log is batched, so a request costs a
 * serialisation, not a write(2).
 */
import fs from 'node:fs'
import { pino, type Logger } from 'pino'

export type { Logger }

export function createLogger (level: string, name = 'claylb'): Logger {
  // Synchronous on purpose: pino's default destination is asynchronous and flushes at exit with
  // sonic-boom's flushSync, which retries a broken pipe (EPIPE) forever — claylb would never exit
  // once whoever read its stdout went away. A sync write that fails just drops the line.
  return pino({ name, level, base: { pid: process.pid } }, pino.destination({ dest: 1, sync: true }))
}

export interface AccessLog {
  /** one line for one request; `upstream` undefined when claylb answered itself */
  request (method: string, path: string, status: number, upstream: string | undefined, attempts: number, ms: number | undefined, replayed?: boolean): void
  /**
   * Write out what is buffered (on shutdown): synchronously, unless a batch is still being written;
   * then the rest follows it, in order, as soon as it is done. Resolves once every line is written.
   */
  flush (): Promise<void>
  /** lines dropped because stdout did not keep up (the buffer's cap was reached) */
  readonly dropped: number
}

/**
 * Workers write to the same stdout; a write(2) to a pipe of at most PIPE_BUF (4096) bytes is atomic,
 * so keeping every batch under it keeps their lines from being cut into ours.
 */
const BATCH_BYTES = 4096
/** at most this much waits for stdout; past it lines are dropped (and counted), never the request path blocked */
const MAX_PENDING_BYTES = 4 * 1024 * 1024

const LEVELS: Record<string, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity }

/**
 * The access log: one pino-compatible JSON line per request, built by hand (no pino call, no object
 * per request) and copied as latin1 (the bytes of a path as they came) into a 4 KB Buffer batch. Full
 * batches are written with an asynchronous `fs.write` on stdout, one at a time, so a slow or blocked
 * reader costs the request path nothing: batches queue up to MAX_PENDING_BYTES, then lines are
 * dropped and counted.
 */
export function createAccessLog (level: string, name = 'claylb', fd = 1): AccessLog {
  const enabled = (LEVELS[level] ?? 30) <= 30
  const prefix = `{"level":30,"time":`
  const middle = `,"pid":${process.pid},"name":${JSON.stringify(name)},"method":"`
  let batch = Buffer.allocUnsafe(BATCH_BYTES)
  let used = 0
  const queue: Buffer[] = []
  let pendingBytes = 0
  let writing = false
  let dropped = 0
  let current: Buffer | null = null
  /** set by flush() while a batch was in flight: the rest is written right after it, synchronously */
  let flushed: (() => void) | null = null
  const writeRest = (): void => {
    const rest = Buffer.concat(queue)
    queue.length = 0
    pendingBytes = 0
    if (rest.length > 0) try { fs.writeSync(fd, rest) } catch { /* stdout gone: drop the lines */ }
  }
  const written = (err: NodeJS.ErrnoException | null, bytes?: number): void => {
    writing = false
    const out = current!
    current = null
    if (flushed !== null) {
      // flush() came while this batch was being written: what it did not take, then the rest, in order
      if (err === null && bytes !== undefined && bytes < out.length) queue.unshift(out.subarray(bytes))
      if (err === null || err.code === 'EAGAIN') writeRest()
      flushed()
      flushed = null
      return
    }
    if (err?.code === 'EAGAIN' || (err === null && bytes !== undefined && bytes < out.length)) {
      // a non-blocking stdout that is full (or took part of the batch): try the rest again shortly
      const rest = err === null ? out.subarray(bytes) : out
      queue.unshift(rest)
      pendingBytes += rest.length
      writing = true
      setTimeout(() => { writing = false; next() }, 10).unref()
      return
    }
    if (err) { // stdout gone: drop what waits
      queue.length = 0
      pendingBytes = 0
      return
    }
    next()
  }
  const next = (): void => {
    const out = queue.shift()
    if (out === undefined) return
    pendingBytes -= out.length
    current = out
    writing = true
    fs.write(fd, out, 0, out.length, null, written)
  }
  const enqueue = (b: Buffer): void => {
    if (pendingBytes + b.length > MAX_PENDING_BYTES) {
      for (let i = b.indexOf(10); i >= 0; i = b.indexOf(10, i + 1)) dropped++
      return
    }
    queue.push(b)
    pendingBytes += b.length
    if (!writing) next()
  }
  const push = (): void => {
    if (used === 0) return
    const full = batch.subarray(0, used)
    batch = Buffer.allocUnsafe(BATCH_BYTES)
    used = 0
    enqueue(full)
  }
  const timer = setInterval(push, 1000)
  timer.unref()
  return {
    request (method, path, status, upstream, attempts, ms, replayed) {
      if (!enabled) return
      const line = prefix + Date.now() + middle + method + '","path":' + JSON.stringify(path) + ',"status":' + status +
        (upstream === undefined ? '' : ',"upstream":' + JSON.stringify(upstream)) + ',"attempts":' + attempts +
        (ms === undefined ? '' : ',"ms":' + Math.round(ms * 100) / 100) + (replayed === true ? ',"replayed":true' : '') + ',"msg":"request"}\n'
      if (used + line.length > BATCH_BYTES) {
        push()
        if (line.length > BATCH_BYTES) { // a line longer than a batch (a huge path) goes alone
          enqueue(Buffer.from(line, 'latin1'))
          return
        }
      }
      used += batch.write(line, used, 'latin1')
    },
    flush () {
      clearInterval(timer)
      push()
      // a batch being written by fs.write cannot be overtaken (its lines would land after later ones,
      // or be lost with a process that exits now): the rest waits for it
      if (current !== null) return new Promise<void>((resolve) => { flushed = resolve })
      writeRest()
      return Promise.resolve()
    },
    get dropped () { return dropped },
  }
}
