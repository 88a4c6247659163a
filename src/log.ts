/**
 * @module log
 * pino, one JSON object a line on stdout. Life-cycle lines are written synchronously (a test or an
 * operator waits for "listening"); the per-request access log goes through a buffered asynchronous
 * destination, so a request costs a serialisation, not a write(2).
 */
import { pino, type Logger } from 'pino'

export type { Logger }

export function createLogger (level: string, name = 'claylb'): Logger {
  return pino({ name, level, base: { pid: process.pid } })
}

export interface AccessLog {
  logger: Logger
  /** write out what is buffered (on shutdown) */
  flush (): void
}

export function createAccessLog (level: string, name = 'claylb'): AccessLog {
  const dest = pino.destination({ dest: 1, sync: false, minLength: 8192 })
  const logger = pino({ name, level, base: { pid: process.pid } }, dest)
  // a quiet proxy still shows its last requests within a second
  const timer = setInterval(() => dest.flush(), 1000)
  timer.unref()
  return {
    logger,
    flush () {
      clearInterval(timer)
      try { dest.flushSync() } catch { /* not ready yet or already closed */ }
    },
  }
}
