/**
 * @module log
 * pino, one JSON object a line on stdout.
 */
import { pino, type Logger } from 'pino'

export type { Logger }

export function createLogger (level: string, name = 'claylb'): Logger {
  return pino({ name, level, base: { pid: process.pid } })
}
