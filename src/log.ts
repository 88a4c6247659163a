/**
 * @module log
 * pino, one JSON object a line on stdout. Life-cycle lines are written synchronously (a test or an
 * operator waits for "listening"); the per-request access log is batched, so a request costs a
 * serialisation, not a write(2).
 */
import { pino, type Logger } from 'pino'

export type { Logger }

export function createLogger (level: string, name = 'claylb'): Logger {
  // Synchronous on purpose: pino's default destination is asynchronous and flushes at exit with
  // sonic-boom's flushSync, which retries a broken pipe (EPIPE) forever — claylb would never exit
  // once whoever read its stdout went away. A sync write that fails just drops the line.
  return pino({ name, level, base: { pid: process.pid } }, pino.destination({ dest: 1, sync: true }))
}

export interface AccessLog {
  logger: Logger
  /** write out what is buffered (on shutdown) */
  flush (): void
}

/**
 * Workers write to the same stdout; a write(2) to a pipe of at most PIPE_BUF (4096) bytes is atomic,
 * so keeping every batch under it keeps their lines from being cut into ours.
 */
const BATCH_BYTES = 4096

/**
 * Lines are batched in memory and written with process.stdout (one write(2) per ~4 KB or per second).
 * Not sonic-boom's asynchronous mode: its flushSync retries a broken pipe forever, so a reader that
 * went away would keep claylb from ever exiting.
 */
export function createAccessLog (level: string, name = 'claylb'): AccessLog {
  let buf = ''
  const flush = (): void => {
    if (buf === '') return
    const out = buf
    buf = ''
    try { process.stdout.write(out) } catch { /* stdout gone: drop the lines */ }
  }
  const logger = pino({ name, level, base: { pid: process.pid } }, {
    write (line: string) {
      if (buf.length + line.length > BATCH_BYTES) flush()
      buf += line
    },
  })
  const timer = setInterval(flush, 1000)
  timer.unref()
  return {
    logger,
    flush () {
      clearInterval(timer)
      flush()
    },
  }
}
