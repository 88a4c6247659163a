/**
 * @module config/schema
 * The one place where every setting, its type, its bounds and its default live.
 * Units are in the key's name (…Ms, …Seconds, …Bytes).
 */
import { z } from 'zod'
import { IDEMPOTENCY_DEFAULTS, MAX_BODY_BYTES, REDIS_KEY_PREFIX, SESSION_DEFAULTS } from '../defaults.js'
import { ACCESS_FIELDS, HASH_ON, RATE } from './vocabulary.js'

export { HASH_ON, RATE }

const intMsg = (what: string) => ({ error: `must be ${what}` })
const positiveInt = (d: number) => z.int(intMsg('a positive integer')).positive(intMsg('a positive integer')).default(d)
const nonNegativeInt = (d: number) => z.int(intMsg('a non-negative integer')).nonnegative(intMsg('a non-negative integer')).default(d)
const port = (d: number) => z.int(intMsg('a port number (0-65535)')).min(0, intMsg('a port number (0-65535)')).max(65535, intMsg('a port number (0-65535)')).default(d)
const str = (d: string) => z.string({ error: 'must be a string' }).min(1, { error: 'must not be empty' }).default(d)
const percent = (d: number) => z.number({ error: 'must be a number from 0 to 100' }).min(0, { error: 'must be a number from 0 to 100' }).max(100, { error: 'must be a number from 0 to 100' }).default(d)
const bool = (d: boolean) => z.boolean({ error: 'must be true or false' }).default(d)

const processesMsg = { error: 'must be "auto" or an integer from 1 to 256' }

const httpUrl = z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' })
const redisUrl = z.url({ protocol: /^rediss?$/, error: 'must be a redis:// or rediss:// URL' })

/** a file path (PEM); read when the listener starts or reloads, where a missing or bad file is reported */
const file = z.string({ error: 'must be a file path' }).min(1, { error: 'must not be empty' })
/** the name of an environment variable */
const envName = z.string({ error: 'must be an environment variable name' }).regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { error: 'must be an environment variable name' })
const SNI_HOST = /^(\*\.)?[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}))*\.?$/

const DNS_HOST_PORT = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62}))*\.?:\d{1,5}$/
const DNS_SRV = /^_[A-Za-z0-9-]+\._(tcp|udp)(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62}))+\.?$/

/**
 * An upstream: `url` (static), or `dns` (discovered: A/AAAA of "name:port", or with `srv: true` the SRV
 * records of "_service._proto.name"), re-resolved as the records' TTL says within the `dns` section's
 * bounds (`refreshMs`: this entry's upper bound). load.ts splits the two kinds (StaticUpstream, DnsUpstream).
 */
export const upstreamSchema = z.strictObject({
  url: httpUrl.optional(),
  dns: z.string({ error: 'must be "name:port", or "_service._proto.name" with srv: true' }).optional(),
  srv: z.boolean({ error: 'must be true or false' }).optional(),
  /** the scheme of a discovered upstream's URLs */
  scheme: z.enum(['http', 'https'], { error: 'must be "http" or "https"' }).optional(),
  refreshMs: z.int(intMsg('a positive integer')).positive(intMsg('a positive integer')).optional(),
  weight: positiveInt(1),
  /** a stable name for metrics and the admin API; defaults to host:port (a discovered one: dns/address:port) */
  id: z.string().min(1).optional(),
}).superRefine((u, ctx) => {
  const problem = (message: string, key?: string): void => { ctx.addIssue({ code: 'custom', message, path: key === undefined ? [] : [key] }) }
  if ((u.url === undefined) === (u.dns === undefined)) return problem('must have either url or dns')
  if (u.url !== undefined) {
    for (const k of ['srv', 'scheme', 'refreshMs'] as const) if (u[k] !== undefined) problem('goes with dns, not url', k)
    return
  }
  if (u.id !== undefined) problem('a dns upstream names each address it finds itself (dns/address:port)', 'id')
  if (u.srv === true ? !DNS_SRV.test(u.dns!) : !DNS_HOST_PORT.test(u.dns!)) {
    problem(u.srv === true ? 'must be an SRV name, "_service._proto.name"' : 'must be "name:port" (or an SRV name with srv: true)', 'dns')
  } else if (u.srv !== true && Number(u.dns!.slice(u.dns!.lastIndexOf(':') + 1)) > 65535) problem('the port must be 0-65535', 'dns')
})

/** a `url` upstream (config/load.ts splits them from the discovered ones) */
export interface StaticUpstream { url: string, weight: number, id?: string | undefined }
/** a `dns` upstream: its addresses become hosts of its pool (upstream/dns-discovery.ts) */
export interface DnsUpstream { dns: string, srv: boolean, scheme: 'http' | 'https', weight: number, refreshMs?: number | undefined }

export const routeMatch = z.string().regex(/^[A-Z]+ \/\S*$/, { error: 'must be "METHOD /path-prefix", e.g. "POST /orders"' })

/** what a consistent-hash balancer hashes: header:NAME, cookie:NAME, ip or path (data/balancer/hash-key.ts) */

export const balancerSchema = z.strictObject({
  policy: z.enum(['round-robin', 'least-request', 'consistent-hash'], { error: 'must be "round-robin", "least-request" or "consistent-hash"' }).default('round-robin'),
  /** consistent-hash: what is hashed (balancer/hash-key.ts); a request without it is round-robined */
  on: z.string({ error: 'must be "header:NAME", "cookie:NAME", "ip" or "path"' }).regex(HASH_ON, { error: 'must be "header:NAME", "cookie:NAME", "ip" or "path"' }).optional(),
})

export const healthCheckSchema = z.strictObject({
  /** active checks of every upstream; off, only the outlier detector judges health */
  enabled: bool(true),
  /**
   * unset: a static upstream is checked by a TCP connect (HAProxy's `check`), a worker by
   * `GET /healthz`; set: every host gets `GET path` (2xx/3xx pass)
   */
  path: z.string().startsWith('/', { error: 'must start with /' }).optional(),
  intervalMs: positiveInt(2000),
  /** each wait is shortened by a random share up to this, so checks of many hosts spread out */
  jitterPercent: percent(10),
  timeoutMs: positiveInt(1000),
  unhealthyThreshold: positiveInt(2),
  healthyThreshold: positiveInt(1),
})

export const outlierSchema = z.strictObject({
  enabled: bool(true),
  /** consecutive failed tries (connect failure, timeout, reset, 5xx) that eject a host */
  consecutiveFailures: positiveInt(5),
  /** an ejection lasts this × the host's number of ejections (capped by maxEjectionMs) */
  baseEjectionMs: positiveInt(30_000),
  maxEjectionMs: positiveInt(300_000),
  /** share of hosts that may be ejected at once; at least one may always be */
  maxEjectionPercent: percent(10),
})

export const retrySchema = z.strictObject({
  /** tries in all, the first included */
  attempts: positiveInt(2),
  budgetPercent: percent(20),
  minRetryConcurrency: nonNegativeInt(3),
  /** full-jitter exponential backoff before a retry: random(0, min(max, base × 2^n)) */
  backoffBaseMs: nonNegativeInt(25),
  backoffMaxMs: nonNegativeInt(250),
  /** a try without response headers by then fails and may be retried; 0: only timeouts.headersMs */
  perTryTimeoutMs: nonNegativeInt(0),
  /** upstream statuses retried like a failed try (idempotent requests only), e.g. [503] */
  onStatus: z.array(z.int().min(500, { error: 'must be a 5xx status' }).max(599, { error: 'must be a 5xx status' })).default([]),
})

export const timeoutsSchema = z.strictObject({
  connectMs: positiveInt(2000),
  headersMs: positiveInt(30_000),
  requestMs: positiveInt(60_000),
  idleMs: positiveInt(60_000),
  /**
   * the longest silence between two reads of a request body (nginx's client_body_timeout): the client
   * is answered 408, never counted against an upstream
   */
  clientBodyMs: positiveInt(60_000),
  /** an idle upstream connection is closed after this; keep it below the upstreams' own keep-alive timeout */
  upstreamKeepAliveMs: positiveInt(4000),
})

/** a header rewrite: `set` replaces (or adds) each named header, `remove` drops the names */
const headerName = z.string().regex(/^[!#-'*+.0-9A-Z^-z|~-]+$/, { error: 'must be a header name' })
const headerValue = z.string({ error: 'must be a string' }).regex(/^[\t\x20-\x7e\x80-\xff]*$/, { error: 'must not contain control characters' })
export const headerRewriteSchema = z.strictObject({
  set: z.record(headerName, headerValue, { error: 'must be a mapping of header name to value' }).default({}),
  remove: z.array(headerName, { error: 'must be a list of header names' }).default([]),
})

/** how https:// upstreams are connected (top level `tls`, and a pool's own `tls` over it) */
export const upstreamTlsSchema = z.strictObject({
  /** PEM file of the CA(s) that signed the upstreams' certificates, trusted besides Node's own */
  ca: file.optional(),
  /** the name checked against the upstream's certificate (and sent as SNI); unset: the URL's host */
  servername: z.string().min(1, { error: 'must not be empty' }).optional(),
  /** false accepts any certificate (testing only) */
  rejectUnauthorized: bool(true),
})

/** a section's keys, each optional and without its default: what a pool sets over the top level */
function overrides<S extends z.ZodRawShape> (schema: z.ZodObject<S>): z.ZodOptional<z.ZodObject<{ [K in keyof S]: z.ZodOptional<z.ZodType<z.output<S[K]>, z.input<S[K]>>> }, z.core.$strict>> {
  const shape: Record<string, z.ZodType> = {}
  for (const [k, v] of Object.entries(schema.shape)) shape[k] = (v instanceof z.ZodDefault ? v.unwrap() as z.ZodType : v as z.ZodType).optional()
  return z.strictObject(shape).optional() as never
}

/** a pool's circuit breakers (routing/pool-limits.ts); each unset: no limit */
export const poolLimitsSchema = z.strictObject({
  /** requests of the pool in flight at once; more: 503 pool-overloaded (Envoy's max_requests) */
  maxInflight: z.int(intMsg('a positive integer')).positive(intMsg('a positive integer')).optional(),
  /** requests waiting for a connection (needs maxConnectionsPerHost; default then 1024, Envoy's) */
  maxPending: z.int(intMsg('a non-negative integer')).nonnegative(intMsg('a non-negative integer')).optional(),
  /** upstream connections to each host of the pool; a request finding none free waits (maxPending) */
  maxConnectionsPerHost: z.int(intMsg('a positive integer')).positive(intMsg('a positive integer')).optional(),
})

/** a pool: its own upstreams; every section left out is the top level's, a section given is merged over it */
export const poolSchema = z.strictObject({
  upstreams: z.array(upstreamSchema, { error: 'must be a list of { url, weight }' }).min(1, { error: 'must list at least one upstream' }),
  balancer: overrides(balancerSchema),
  healthCheck: overrides(healthCheckSchema),
  outlier: overrides(outlierSchema),
  retry: overrides(retrySchema),
  timeouts: overrides(timeoutsSchema.pick({ connectMs: true, headersMs: true, requestMs: true })),
  tls: overrides(upstreamTlsSchema),
  /** over the top-level limits' maxInflight, maxPending, maxConnectionsPerHost */
  limits: poolLimitsSchema.optional(),
})

/** how `dns` upstreams are resolved */
export const dnsSchema = z.strictObject({
  /** DNS servers ("ip" or "ip:port"); empty: the system's (/etc/resolv.conf) */
  servers: z.array(z.string().regex(/^(\d{1,3}(\.\d{1,3}){3}(:\d{1,5})?|\[[0-9A-Fa-f:.]+\](:\d{1,5})?|[0-9A-Fa-f:]+)$/, { error: 'must be an IP address, optionally with :port ([v6]:port)' })).default([]),
  /** a record's TTL is honoured within these bounds: never more often than min, never less than max */
  minRefreshMs: positiveInt(1000),
  maxRefreshMs: positiveInt(30_000),
  /** one query's timeout (the resolver tries twice) */
  timeoutMs: positiveInt(2000),
})

/**
 * Which requests a route (or a rate limit, an access rule) applies to: every key given must hold
 * (data/policy/match.ts compiles it).
 */
export const matchSchema = z.strictObject({
  /** exact, or `*.example.com` (any subdomain, not example.com itself); case-insensitive, port ignored */
  host: z.string().regex(/^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?$|^\[[0-9A-Fa-f:.]+\]$/, { error: 'must be a host name, or *. and a domain' }).optional(),
  /** the request target starts with this (case-sensitive, as nginx's `location` prefix) */
  pathPrefix: z.string().startsWith('/', { error: 'must start with /' }).optional(),
  methods: z.array(z.string().regex(/^[!#-'*+.0-9A-Z^-z|~-]+$/, { error: 'must be a method token' }), { error: 'must be a list of methods' }).min(1, { error: 'must list at least one method' }).optional(),
  /** header name → exact value, or true: present with any value */
  headers: z.record(headerName, z.union([headerValue, z.literal(true)], { error: 'must be a string or true' }), { error: 'must be a mapping of header name to value' }).optional(),
})

const redirectStatusMsg = { error: 'must be 301, 302, 303, 307 or 308' }
/** answered by claylb itself, with a Location made from `to` (shared/policy/redirect) */
export const redirectSchema = z.strictObject({
  /** `{scheme}`, `{host}`, `{path}`, `{query}` are replaced; the query is kept unless `to` has a `?` */
  to: z.string({ error: 'must be a URL or a path' }).min(1, { error: 'must be a URL or a path' }),
  status: z.union([z.literal(301), z.literal(302), z.literal(303), z.literal(307), z.literal(308)], redirectStatusMsg).default(302),
})

/** the path sent upstream, by a regular expression (shared/policy/rewrite); `{1}` … in replace are its groups */
export const rewriteSchema = z.strictObject({
  pattern: z.string({ error: 'must be a regular expression' }).min(1, { error: 'must be a regular expression' }),
  replace: z.string({ error: 'must be a string' }),
})

export const COMPRESSION_ALGORITHMS = ['br', 'gzip'] as const
/** answers compressed by accept-encoding (data/policy/compression) */
export const compressionSchema = z.strictObject({
  /** false: none (a route's `{ enabled: false }` turns the top-level one off there) */
  enabled: bool(true),
  /** in the server's order of preference, used when the client's q-values tie */
  algorithms: z.array(z.enum(COMPRESSION_ALGORITHMS, { error: 'must be "br" or "gzip"' }), { error: 'must be a list of "br", "gzip"' }).min(1, { error: 'must list at least one algorithm' }).default(['br', 'gzip']),
  /** content-type values (no parameters) compressed; `text/*` takes a whole type */
  types: z.array(z.string().regex(/^[a-z0-9!#$&^_.+-]+\/(\*|[a-z0-9!#$&^_.+-]+)$/i, { error: 'must be a media type (text/html, text/*)' }), { error: 'must be a list of media types' }).min(1, { error: 'must list at least one media type' })
    .default(['text/*', 'application/json', 'application/javascript', 'application/xml', 'image/svg+xml', 'application/problem+json']),
  /** answers with a content-length below this are sent as they are (unknown length: compressed) */
  minBytes: nonNegativeInt(1024),
  /** zlib levels: gzip 1-9, br (quality) 0-11 */
  gzipLevel: z.int({ error: 'must be an integer from 1 to 9' }).min(1, { error: 'must be an integer from 1 to 9' }).max(9, { error: 'must be an integer from 1 to 9' }).default(5),
  brotliQuality: z.int({ error: 'must be an integer from 0 to 11' }).min(0, { error: 'must be an integer from 0 to 11' }).max(11, { error: 'must be an integer from 0 to 11' }).default(4),
})

export const routeSchema = z.strictObject({
  /** its `route` label in the metrics and the dashboard (default: its index in `routes`) */
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, { error: 'must be a name of letters, digits, _ . -' }).optional(),
  match: matchSchema.prefault({}),
  /** required unless the route redirects (config/routing checks) */
  pool: z.string({ error: 'must name a pool' }).min(1, { error: 'must name a pool' }).optional(),
  redirect: redirectSchema.optional(),
  rewrite: rewriteSchema.optional(),
  /** this route's compression, in place of the top-level one */
  compression: compressionSchema.optional(),
  /** drop the matched pathPrefix from the path sent upstream (a path left empty becomes /) */
  stripPrefix: bool(false),
  requestHeaders: headerRewriteSchema.optional(),
  responseHeaders: headerRewriteSchema.optional(),
})

/** `100/s`, `6000/m`, `50000/h`: a count above 0 per second, minute or hour */
/** `ip`, `route`, `header:NAME`, `cookie:NAME` */
export const LIMIT_KEY = /^(ip|route|header:[!#-'*+.0-9A-Z^-z|~-]+|cookie:[!#-'*+.0-9A-Z^-z|~-]+)$/

/**
 * A rate limit (issue 27): a token bucket per value of `key` among the requests `match` selects,
 * filled at `rate`, holding `burst` + 1. `global`: one bucket for every instance, in Redis (leased
 * in small allotments, data/policy/leases.ts); `local`: this instance's own.
 */
export const rateLimitSchema = z.strictObject({
  /** the `limit` label of claylb_rate_limited_total and the RateLimit-Policy name */
  name: z.string({ error: 'must be a name' }).regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, { error: 'must be a name of letters, digits, _ . - (at most 64)' }),
  match: matchSchema.prefault({}),
  key: z.string({ error: 'must be ip, route, header:NAME or cookie:NAME' }).regex(LIMIT_KEY, { error: 'must be ip, route, header:NAME or cookie:NAME' }).default('ip'),
  rate: z.string({ error: 'must be a rate such as "100/s" or "6000/m"' }).regex(RATE, { error: 'must be a rate above 0 such as "100/s" or "6000/m" (per s, m or h)' }),
  /** requests a key may send at once beyond the rate (nginx's burst; the bucket holds burst + 1) */
  burst: nonNegativeInt(0),
  scope: z.enum(['global', 'local'], { error: 'must be "global" (every instance, through Redis) or "local" (this instance)' }).default('global'),
  /** global only: what a request gets while Redis cannot be reached */
  onStateDown: z.enum(['allow', 'deny'], { error: 'must be "allow" or "deny"' }).default('allow'),
})

/** An access rule: among the requests `match` selects, a client address in `deny`, or outside a non-empty `allow`, is refused 403. */
export const accessRuleSchema = z.strictObject({
  match: matchSchema.prefault({}),
  allow: z.array(z.string({ error: 'must be a CIDR or an IP address' }), { error: 'must be a list of CIDRs' }).default([]),
  deny: z.array(z.string({ error: 'must be a CIDR or an IP address' }), { error: 'must be a list of CIDRs' }).default([]),
})

export const configSchema = z.strictObject({
  listen: z.strictObject({
    host: str('0.0.0.0'),
    port: port(8080),
    /** TLS to clients: PEM files (paths relative to the working directory); `sni` picks another pair by hostname */
    tls: z.strictObject({
      cert: file,
      key: file,
      sni: z.array(z.strictObject({
        /** exact names or a leading `*.` wildcard (one label), case-insensitive */
        hosts: z.array(z.string().regex(SNI_HOST, { error: 'must be a hostname or *.domain' }), { error: 'must be a list of hostnames' }).min(1, { error: 'must name at least one host' }),
        cert: file,
        key: file,
      }), { error: 'must be a list of { hosts, cert, key }' }).default([]),
    }).optional(),
    /** HTTP/2 by ALPN ("h2") on the TLS listener; HTTP/1.1 is still served on the same port */
    http2: bool(false),
    /**
     * every connection starts with a PROXY protocol header (v1 or v2, before TLS) from one of
     * trustedProxies: its client address is the one used (data/policy/proxy-protocol.ts)
     */
    proxyProtocol: bool(false),
    /**
     * proxy processes accepting on the port: a count, or "auto" (src/control/process/count.ts says how many).
     * Unset: $CLAYLB_PROCESSES, else "auto" (resolved in load.ts). 1: today's single process, no IPC.
     */
    processes: z.union([z.literal('auto'), z.int(processesMsg).min(1, processesMsg).max(256, processesMsg)], processesMsg).optional(),
  }).prefault({}),
  /**
   * The request path: there is one, "raw" (raw sockets + Node's llhttp, src/engine); "auto" means the
   * same. Deprecated: it does nothing, and setting it (or $CLAYLB_ENGINE) logs a deprecation at start;
   * "node" (the node:http + undici path) was removed and is a config error that says so.
   */
  engine: z.enum(['auto', 'raw'], { error: 'must be "auto" or "raw" (the "node" engine was removed: the raw engine runs every feature)' }).optional(),
  /**
   * The admin listener. A non-loopback host needs a token (config/admin.ts). Each token may be given
   * inline, in a file (`…File`, e.g. a mounted Kubernetes Secret) or in an environment variable
   * (`…Env`); load.ts resolves the file or variable into `token` / `metricsToken`.
   */
  admin: z.strictObject({
    host: str('127.0.0.1'),
    port: port(9180),
    /** every state-changing admin route needs `authorization: Bearer <token>` */
    token: z.string().min(1, { error: 'must not be empty' }).optional(),
    tokenFile: file.optional(),
    tokenEnv: envName.optional(),
    /** GET /status and /metrics need a token too (/healthz and /readyz stay open for probes) */
    protectReads: bool(false),
    /** a token that opens GET /metrics alone (a Prometheus scraper's); setting it protects /metrics */
    metricsToken: z.string().min(1, { error: 'must not be empty' }).optional(),
    metricsTokenFile: file.optional(),
    metricsTokenEnv: envName.optional(),
  }).prefault({}),
  upstreams: z.array(upstreamSchema, { error: 'must be a list of { url, weight }' }).default([]),
  dns: dnsSchema.prefault({}),
  /** named upstream sets for routes (`default`: the top-level upstreams, `workers`: the spawned workers) */
  pools: z.record(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, { error: 'must be a name of letters, digits, _ . -' }), poolSchema, { error: 'must be a mapping of pool name to { upstreams, … }' }).default({}),
  /** answers compressed on every route (a route's own `compression` replaces it) */
  compression: compressionSchema.optional(),
  /** first match wins; a request no route matches goes to the default pool */
  routes: z.array(routeSchema, { error: 'must be a list of { match, pool }' }).default([]),
  /** rate limits, each applied to the requests its match selects (every one that matches applies) */
  rateLimits: z.array(rateLimitSchema, { error: 'must be a list of { name, match, key, rate, burst, scope, onStateDown }' }).default([]),
  /** allow / deny by client address; every rule that matches applies */
  access: z.array(accessRuleSchema, { error: 'must be a list of { match, allow, deny }' }).default([]),
  /** peers (CIDR or address) whose x-forwarded-proto / -host are kept; from others they are replaced */
  trustedProxies: z.array(z.string({ error: 'must be a CIDR or an IP address' }), { error: 'must be a list of CIDRs' }).default([]),
  workers: z.strictObject({
    /** unset: 0 when upstreams are given, else 4 (resolved in load.ts) */
    count: z.int(intMsg('a non-negative integer')).nonnegative(intMsg('a non-negative integer')).optional(),
    app: str('builtin:demo'),
    maxRequests: nonNegativeInt(0),
    maxAgeSeconds: nonNegativeInt(0),
    readyTimeoutMs: positiveInt(10_000),
    drainTimeoutMs: positiveInt(10_000),
    maxUnstableRestarts: positiveInt(10),
    /** jitter added to maxRequests / maxAgeSeconds, up to this share, so workers don't recycle together */
    recycleJitterPercent: z.number({ error: 'must be a number from 0 to 100' }).min(0, { error: 'must be a number from 0 to 100' }).max(100, { error: 'must be a number from 0 to 100' }).default(10),
    /** crash-loop backoff (PM2's): first delay, x1.5 per unstable restart up to the cap */
    restartBackoffMs: positiveInt(100),
    restartBackoffMaxMs: positiveInt(15_000),
    /** a worker that lived this long resets its slot's backoff and unstable-restart count */
    stableAfterMs: positiveInt(30_000),
    /** opt-in fault injection in the demo app (?fail=, /hang) for chaos runs */
    faults: bool(false),
  }).prefault({}),
  redis: z.strictObject({
    /** resolved in load.ts: --redis, else this, else REDIS_URL, else none (never an implicit 127.0.0.1:6379) */
    url: redisUrl.optional(),
    keyPrefix: z.string().default(REDIS_KEY_PREFIX),
    cluster: z.array(redisUrl).min(1).optional(),
    /**
     * credentials of the data nodes (standalone, Sentinel's primary and replicas, every Cluster node)
     * kept out of URLs: the URL's when it has them, else these, else $REDIS_USERNAME / $REDIS_PASSWORD
     * (redis/client.ts redisAuth). The file holds the password alone (a mounted secret).
     */
    username: z.string({ error: 'must be a string' }).min(1, { error: 'must not be empty' }).optional(),
    /** the password inline, in a file or in an environment variable: at most one (config/redis-password.ts) */
    password: z.string({ error: 'must be a string' }).min(1, { error: 'must not be empty' }).optional(),
    passwordFile: file.optional(),
    sentinel: z.strictObject({
      name: z.string().min(1),
      nodes: z.array(redisUrl).min(1),
      /** the sentinels' own credentials: these, else $REDIS_SENTINEL_USERNAME / $REDIS_SENTINEL_PASSWORD, else the first node URL's */
      username: z.string({ error: 'must be a string' }).min(1, { error: 'must not be empty' }).optional(),
      passwordFile: file.optional(),
    }).optional(),
    commandTimeoutMs: positiveInt(500),
    /** the environment variable holding the password, read at load into `password` */
    passwordEnv: envName.optional(),
  }).prefault({}),
  balancer: balancerSchema.prefault({}),
  healthCheck: healthCheckSchema.prefault({}),
  /** passive health: Envoy's consecutive-failure outlier detection, fed by every try */
  outlier: outlierSchema.prefault({}),
  /** when fewer than thresholdPercent of the (non-draining) hosts are healthy */
  panic: z.strictObject({
    /** 0 turns panic mode off */
    thresholdPercent: percent(50),
    /** spread: route over every host, healthy or not; shed: answer 503 with retry-after */
    mode: z.enum(['spread', 'shed'], { error: 'must be "spread" or "shed"' }).default('spread'),
  }).prefault({}),
  retry: retrySchema.prefault({}),
  timeouts: timeoutsSchema.prefault({}),
  limits: z.strictObject({
    maxHeaderBytes: positiveInt(16_384),
    maxBodyBytes: positiveInt(MAX_BODY_BYTES),
    /** request header fields; more is 431 (HAProxy's tune.http.maxhdr is 101) */
    maxHeaders: positiveInt(100),
    /** request headers whose name has an `_`: dropped (nginx's underscores_in_headers off) or forwarded */
    underscoresInHeaders: z.enum(['drop', 'forward'], { error: 'must be "drop" or "forward"' }).default('drop'),
    /** the default pool's circuit breakers, and every pool's unless its own `limits` sets them */
    ...poolLimitsSchema.shape,
  }).prefault({}),
  idempotency: z.strictObject({
    routes: z.array(z.strictObject({
      match: routeMatch,
      required: bool(false),
      /**
       * the upstream dedupes on `claylb-idempotency-id` in its own storage: after an unknown outcome a
       * retry is forwarded again under a new lease instead of refused
       */
      upstreamDedupes: bool(false),
      /** match the path case-sensitively (default: as most routers do, case-insensitively) */
      caseSensitive: bool(false),
      /** this route's bound of a keyed body (unset: `idempotency.maxBodyBytes`) */
      maxBodyBytes: z.int(intMsg('a positive integer')).positive(intMsg('a positive integer')).optional(),
    })).default([]),
    /**
     * where a key's scope comes from: the first of these request headers present (`cookie:<name>` is
     * one cookie); unset: `authorization`, then the session cookie
     */
    scope: z.array(z.string().regex(/^(cookie:[!#-'*+.0-9A-Z^-z|~-]+|[!#-'*+.0-9A-Z^-z|~-]+)$/, { error: 'must be a header name or "cookie:<name>"' })).min(1, { error: 'must name at least one header' }).optional(),
    /** `WAIT` for this many replicas after each claim and record (0: no WAIT) */
    waitReplicas: nonNegativeInt(0),
    /** how long one WAIT may take; below `redis.commandTimeoutMs` */
    waitTimeoutMs: positiveInt(IDEMPOTENCY_DEFAULTS.waitTimeoutMs),
    ttlSeconds: positiveInt(IDEMPOTENCY_DEFAULTS.ttlSeconds),
    lockSeconds: positiveInt(IDEMPOTENCY_DEFAULTS.lockSeconds),
    maxResponseBytes: positiveInt(IDEMPOTENCY_DEFAULTS.maxResponseBytes),
    /** the largest keyed request body (413 above); its JSON is canonicalised to fingerprint it */
    maxBodyBytes: positiveInt(IDEMPOTENCY_DEFAULTS.maxBodyBytes),
    onConcurrent: z.enum(['conflict', 'wait'], { error: 'must be "conflict" or "wait"' }).default(IDEMPOTENCY_DEFAULTS.onConcurrent),
    /** upstream answers that mean "not processed, retry": the key is released, not stored ([] stores all) */
    releaseStatuses: z.array(z.int({ error: 'must be an HTTP status from 400 to 599' }).min(400, { error: 'must be an HTTP status from 400 to 599' }).max(599, { error: 'must be an HTTP status from 400 to 599' })).default([...IDEMPOTENCY_DEFAULTS.releaseStatuses]),
  }).prefault({}),
  session: z.strictObject({
    cookie: str(SESSION_DEFAULTS.cookie),
    secretEnv: str(SESSION_DEFAULTS.secretEnv),
    ttlSeconds: positiveInt(SESSION_DEFAULTS.ttlSeconds),
    /** most bytes (field names + JSON values) one session may hold; 0 = no limit */
    maxBytes: nonNegativeInt(SESSION_DEFAULTS.maxBytes),
    /** the cookie's Secure attribute; auto: when the request came over https (x-forwarded-proto) */
    secure: z.union([z.literal('auto'), z.boolean()], { error: 'must be true, false or "auto"' }).default(SESSION_DEFAULTS.secure),
  }).prefault({}),
  /** TLS to https:// upstreams (and their active health checks); a pool's `tls` is merged over it */
  tls: upstreamTlsSchema.prefault({}),
  /** deprecated: the former name of shutdown.timeoutMs, still read when that is unset (load.ts) */
  shutdownTimeoutMs: z.int(intMsg('a positive integer')).positive(intMsg('a positive integer')).optional(),
  /**
   * SIGTERM: /readyz answers 503 at once, the port keeps accepting for acceptGraceMs (the time a
   * balancer in front needs to see the 503 and stop sending), then closes; in-flight requests finish
   * within timeoutMs. See README "Process model" (Shutdown).
   */
  shutdown: z.strictObject({
    /** unset: $CLAYLB_ACCEPT_GRACE_MS, else ACCEPT_GRACE_MS (resolved in load.ts) */
    acceptGraceMs: z.int(intMsg('a non-negative integer')).nonnegative(intMsg('a non-negative integer')).optional(),
    /** unset: the deprecated shutdownTimeoutMs, else the longest timeouts.requestMs, pools' included (load.ts) */
    timeoutMs: z.int(intMsg('a positive integer')).positive(intMsg('a positive integer')).optional(),
  }).prefault({}),
  log: z.strictObject({
    level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    /**
     * the access log: true (JSON, the default fields, stdout), false, or { format, fields, path }
     * (data/observe/access-log; README "Logs")
     */
    access: z.preprocess((v) => typeof v === 'boolean' ? { enabled: v } : v, z.strictObject({
      /** `log.access: false` is short for { enabled: false }, `true` for {} */
      enabled: bool(true),
      format: z.enum(['json', 'combined', 'common'], { error: 'must be "json", "combined" or "common"' }).default('json'),
      fields: z.array(z.enum(ACCESS_FIELDS, { error: `must be one of ${ACCESS_FIELDS.join(', ')}` }), { error: 'must be a list of field names' })
        .min(1, { error: 'must name at least one field' }).optional(),
      /** a file, appended to and reopened on SIGUSR1; unset: stdout */
      path: file.optional(),
    }, { error: 'must be true, false or { format, fields, path }' }).prefault({})),
  }).prefault({}),
  /** x-request-id: kept from trustedProxies, else made; sent upstream, to the client, in the log and problems */
  requestId: z.strictObject({
    enabled: bool(true),
    header: z.string({ error: 'must be a header name' }).regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, { error: 'must be a header name' })
      .transform((v) => v.toLowerCase()).default('x-request-id'),
  }).prefault({}),
  /** W3C Trace Context and OTLP/HTTP export (data/observe/trace, otlp); unset: traceparent is an ordinary header */
  tracing: z.strictObject({
    /** requests that start a trace here are sampled with this probability (0–1); a parent's flag is kept */
    sampleRatio: z.number({ error: 'must be a number from 0 to 1' }).min(0, { error: 'must be a number from 0 to 1' }).max(1, { error: 'must be a number from 0 to 1' }).default(0.01),
    /** an OTLP/HTTP traces endpoint (http://collector:4318/v1/traces); unset: propagate only */
    otlp: httpUrl.optional(),
    serviceName: str('claylb'),
  }).optional(),
})

/**
 * Where the Redis in use was named: `config` (redis.url or --redis), `REDIS_URL`, `cluster`, `sentinel`,
 * or `none`: nothing names one, and `url` is empty. Never an implicit 127.0.0.1:6379 — whatever answers
 * there may be someone else's; a start that needs Redis without one runs its own (redis/embedded.ts).
 */
export type RedisSource = 'config' | 'REDIS_URL' | 'cluster' | 'sentinel' | 'none'

export type ConfigInput = z.input<typeof configSchema>
type Parsed = z.output<typeof configSchema>
/** a pool with the top level's sections merged under its own (resolved in load.ts) */
export interface PoolSettings {
  upstreams: StaticUpstream[]
  /** the pool's `dns` upstreams, re-resolved by the control plane */
  dnsUpstreams: DnsUpstream[]
  balancer: Parsed['balancer']
  healthCheck: Parsed['healthCheck']
  outlier: Parsed['outlier']
  retry: Parsed['retry']
  timeouts: Parsed['timeouts']
  tls: Parsed['tls']
  limits: z.output<typeof poolLimitsSchema>
}
export type PoolConfig = DeepReadonly<PoolSettings>
export type RouteConfig = DeepReadonly<Parsed['routes'][number]>
export type MatchConfig = DeepReadonly<Parsed['routes'][number]['match']>
export type RateLimitConfig = DeepReadonly<Parsed['rateLimits'][number]>
export type AccessRuleConfig = DeepReadonly<Parsed['access'][number]>

export type Config = DeepReadonly<Omit<Parsed, 'workers' | 'redis' | 'engine' | 'pools' | 'listen' | 'shutdown' | 'shutdownTimeoutMs' | 'upstreams'> & {
  upstreams: StaticUpstream[]
  dnsUpstreams: DnsUpstream[]
  shutdown: { acceptGraceMs: number, timeoutMs: number }
  engine: 'auto' | 'raw'
  listen: Parsed['listen'] & { processes: 'auto' | number }
  pools: Record<string, PoolSettings>
  workers: Parsed['workers'] & { count: number }
  /** url: '' when nothing names a Redis (source 'none'); the start puts the embedded one's there */
  redis: Parsed['redis'] & { url: string, source: RedisSource }
  /** keys and variables still accepted but deprecated: logged once at start, listed by check-config */
  deprecations: string[]
}>

type DeepReadonly<T> = T extends (infer U)[] ? readonly DeepReadonly<U>[]
  : T extends object ? { readonly [K in keyof T]: DeepReadonly<T[K]> } : T
