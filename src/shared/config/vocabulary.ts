/**
 * @module shared/config/vocabulary
 * The words and shapes of config values that the data plane reads as well as the schema: plain
 * constants without zod, so a proxy process (which never validates a config) does not load it
 * (test/cores/proxy-start.test.ts).
 */

/** a consistent-hash balancer's `on`: `header:NAME`, `cookie:NAME`, `ip` or `path` */
export const HASH_ON = /^(?:(header|cookie):([!#-'*+.0-9A-Z^-z|~-]+)|ip|path)$/

/** a rate limit's `rate`: N per second, minute or hour, N >= 1 */
export const RATE = /^([1-9]\d{0,8})\/(s|m|h)$/

/** the fields `log.access.fields` may name (data/observe/access-log writes them) */
export const ACCESS_FIELDS = ['time', 'client', 'method', 'host', 'path', 'protocol', 'tls', 'sni', 'status', 'ended', 'bytesIn', 'bytesOut',
  'bodyBytesOut', 'ms', 'upstreamMs', 'upstream', 'attempts', 'pool', 'route', 'requestId', 'traceId', 'userAgent', 'referer',
  'idempotency', 'replayed', 'rateLimit'] as const
export type AccessField = typeof ACCESS_FIELDS[number]
