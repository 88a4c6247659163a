/**
 * @module log
 * pino, one JSON object a line on stdout. Life-cycle lines are written synchronously (a test or an
 * operator waits for "listening"); the per-request access log (data/observe/access-log) is batched,
 * so a request costs a serialisation, not a write(2).
 */
import { pino, type Logger } from 'pino'

export type { Logger }

export function createLogger (level: string, name = 'claylb'): Logger {
  // Synchronous on purpose: pino's default destination is asynchronous and flushes at exit with
  // sonic-boom's flushSync, which retries a broken pipe (EPIPE) forever — claylb would never exit
  // once whoever read its stdout went away. A sync write that fails just drops the line.
  return pino({ name, level, base: { pid: process.pid } }, pino.destination({ dest: 1, sync: true }))
}
