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
  request (method: string, path: string, status: number, upstream: string | undefined, attempts: number, ms: number | undefined): void
  /** write out what is buffered, synchronously (on shutdown) */
  flush (): void
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
 * per request), appended to a string batch of at most 4 KB. Full batches are written with an
 * asynchronous `fs.write` on stdout, one at a time, so a slow or blocked reader costs the request path
 * nothing: batches queue up to MAX_PENDING_BYTES, then lines are dropped and counted.
 */
export function createAccessLog (level: string, name = 'claylb', fd = 1): AccessLog {
  const enabled = (LEVELS[level] ?? 30) <= 30
  const prefix = `{"level":30,"time":`
  const middle = `,"pid":${process.pid},"name":${JSON.stringify(name)},"method":"`
  let buf = ''
  const queue: string[] = []
  let pendingBytes = 0
  let writing = false
  let dropped = 0
  let current = ''
  const written = (err: NodeJS.ErrnoException | null, bytes?: number): void => {
    writing = false
    if (err?.code === 'EAGAIN' || (err === null && bytes !== undefined && bytes < Buffer.byteLength(current))) {
      // a non-blocking stdout that is full (or took part of the batch): try the rest again shortly
      const rest = err === null ? Buffer.from(current).subarray(bytes).toString() : current
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
    fs.write(fd, out, null, 'utf8', written)
  }
  const push = (): void => {
    if (buf === '') return
    if (pendingBytes + buf.length > MAX_PENDING_BYTES) {
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n', i + 1)) dropped++
    } else {
      queue.push(buf)
      pendingBytes += buf.length
      if (!writing) next()
    }
    buf = ''
  }
  const timer = setInterval(push, 1000)
  timer.unref()
  return {
    request (method, path, status, upstream, attempts, ms) {
      if (!enabled) return
      const line = prefix + Date.now() + middle + method + '","path":' + JSON.stringify(path) + ',"status":' + status +
        (upstream === undefined ? '' : ',"upstream":' + JSON.stringify(upstream)) + ',"attempts":' + attempts +
        (ms === undefined ? '' : ',"ms":' + Math.round(ms * 100) / 100) + ',"msg":"request"}\n'
      if (buf.length + line.length > BATCH_BYTES) push()
      buf += line
    },
    flush () {
      clearInterval(timer)
      const rest = queue.join('') + buf
      queue.length = 0
      pendingBytes = 0
      buf = ''
      if (rest === '') return
      try { fs.writeSync(fd, rest) } catch { /* stdout gone: drop the lines */ }
    },
    get dropped () { return dropped },
  }
}
