/**
 * @module idempotency/redis-store
 * The shared store: one Redis hash per record, every state change one Lua script (EVALSHA through
 * ioredis `defineCommand`), every write a compare-and-set on the owner token. The record's own TTL is
 * the lease (and later the retention), so expiry runs on Redis's clock, never an instance's.
 *
 * Key: `<prefix>idem:{<id>}` where id is the SHA-256 of scope + client key: the raw key never appears
 * in a key name, and the whole hash is the hash tag, so records spread over a Redis Cluster's slots and
 * each script touches one slot. `onConcurrent: wait` listens on `<prefix>idem:{<id>}:settled`.
 */
import { IDEMPOTENCY_DEFAULTS, REDIS_KEY_PREFIX } from '../defaults.js'
import type { Cluster, Redis } from 'ioredis'
import { TurnCork } from '../redis/turn-cork.js'
import { decodeHeaders, encodeHeaders, StoreUnavailableError, type IdempotencyStore, type StoreBegin, type StoredResponse } from './store.js'

// The lease is a deadline in the record on Redis's clock (TIME), never an instance's; the record's own
// TTL is the retention (an in-flight record: lease + ttlMs, moved by every renewal), so a claim whose
// owner vanished stays, and becomes unknown, instead of lapsing. Redis's work per request is counted
// in redis.call()s (each one a command inside the script): a first execution is BEGIN's 4 and FINISH's
// 3, a replay BEGIN's 2. TIME is read only on the paths that need the clock.
const CLOCK = `
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`

// KEYS[1] record · ARGV fingerprint, token, leaseMs, ttlMs, reclaim ('1' | '0'), channel
// → {'p', fence} | {'m'} | {'c', status, hdr, body} | {'t', status} | {'i', leaseLeftMs, elapsedMs} | {'u', pttl}
const BEGIN = CLOCK + `
local r = redis.call('HMGET', KEYS[1], 'st', 'fp')
local st = r[1]
if not st then
  local now = clock()
  redis.call('HSET', KEYS[1], 'st', 'i', 'fp', ARGV[1], 'tok', ARGV[2], 'fence', 1, 'lease', now + tonumber(ARGV[3]), 't0', now)
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) + tonumber(ARGV[4]))
  return {'p', 1}
end
if r[2] ~= ARGV[1] then return {'m'} end
if st == 'c' then
  local c = redis.call('HMGET', KEYS[1], 'status', 'hdr', 'body')
  return {'c', c[1], c[2], c[3]}
end
if st == 't' then return {'t', redis.call('HGET', KEYS[1], 'status')} end
local now = nil
if st == 'i' then
  now = clock()
  local l = redis.call('HMGET', KEYS[1], 'lease', 't0')
  local left = tonumber(l[1]) - now
  if left > 0 then return {'i', left, now - tonumber(l[2])} end
  -- the owner's lease ended without a result: it may have executed; never free, unknown
  redis.call('HSET', KEYS[1], 'st', 'u')
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  if ARGV[6] ~= '' then redis.call('PUBLISH', ARGV[6], 'u') end
end
if ARGV[5] == '1' then
  now = now or clock()
  local fence = redis.call('HINCRBY', KEYS[1], 'fence', 1)
  redis.call('HSET', KEYS[1], 'st', 'i', 'tok', ARGV[2], 'lease', now + tonumber(ARGV[3]), 't0', now)
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) + tonumber(ARGV[4]))
  return {'p', fence}
end
return {'u', redis.call('PTTL', KEYS[1])}
`

// the owner check of the scripts below: the token still owns the record, in state `i` (in flight)
const OWNED = `
local o = redis.call('HMGET', KEYS[1], 'tok', 'st')
if o[1] ~= ARGV[1] or o[2] ~= 'i' then return 0 end
`

// KEYS[1] record · ARGV token, leaseMs, ttlMs. The retention moves with the lease: a request that runs
// longer than ttlMs (or an owner stopped mid-request) must not lose its record while it may execute
const RENEW = CLOCK + OWNED + `
redis.call('HSET', KEYS[1], 'lease', clock() + tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) + tonumber(ARGV[3]))
return 1
`

// KEYS[1] record · ARGV token, ttlMs, channel ('' = nobody listens), state ('c' | 't'), status, headers, body.
// The token is emptied, not deleted (one command less): no owner token is empty, so none matches it
const FINISH = `
local o = redis.call('HMGET', KEYS[1], 'tok', 'st')
if o[1] ~= ARGV[1] or (o[2] ~= 'i' and o[2] ~= 'u') then return 0 end
if ARGV[4] == 'c' then
  redis.call('HSET', KEYS[1], 'st', 'c', 'tok', '', 'status', ARGV[5], 'hdr', ARGV[6], 'body', ARGV[7])
else
  redis.call('HSET', KEYS[1], 'st', 't', 'tok', '', 'status', ARGV[5])
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if ARGV[3] ~= '' then redis.call('PUBLISH', ARGV[3], 'c') end
return 1
`

// KEYS[1] record · ARGV token, ttlMs, channel (the token stays: the owner may still complete it)
const UNKNOWN = OWNED + `
redis.call('HSET', KEYS[1], 'st', 'u')
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if ARGV[3] ~= '' then redis.call('PUBLISH', ARGV[3], 'u') end
return 1
`

// KEYS[1] record · ARGV token, channel
const RELEASE = OWNED + `
redis.call('DEL', KEYS[1])
if ARGV[2] ~= '' then redis.call('PUBLISH', ARGV[2], 'r') end
return 1
`

type Reply = Array<Buffer | number | null>
interface Scripts {
  claylbIdemBeginBuffer (key: string, fp: string, token: string, leaseMs: number, ttlMs: number, reclaim: '1' | '0', channel: string): Promise<Reply>
  claylbIdemRenew (key: string, token: string, leaseMs: number, ttlMs: number): Promise<number>
  claylbIdemFinish (key: string, token: string, ttlMs: number, channel: string, state: 'c' | 't', status: number, headers: string, body: Buffer | ''): Promise<number>
  claylbIdemUnknown (key: string, token: string, ttlMs: number, channel: string): Promise<number>
  claylbIdemRelease (key: string, token: string, channel: string): Promise<number>
}

export interface RedisStoreOptions {
  /** prepended to every key (`redis.keyPrefix`); the client itself must not add one */
  keyPrefix?: string
  /** publish settle events for `onConcurrent: wait` */
  notify?: boolean
  /**
   * `WAIT` for this many replicas after every claim and every record (`idempotency.waitReplicas`),
   * so a failover cannot lose a claim. A claim the replicas do not acknowledge is released and the
   * request refused (StoreUnavailableError). On a Cluster the WAIT goes to the primary serving the
   * key's slot, on the connection that carried the write. WAIT holds the connection it runs on: give
   * the store a connection of its own.
   */
  waitReplicas?: number
  /** how long one WAIT may take (default 250 ms, as idempotency.waitTimeoutMs); keep it below the client's command timeout */
  waitTimeoutMs?: number
  /** a record (the request executed, its answer stored) that fewer replicas than asked acknowledged */
  onUnreplicated?: (acked: number) => void
  /** where each command's latency and each failure go (data/counting/counters.ts: plain numbers) */
  timing?: RedisTiming
}

/** A latency recorder per command name (asked once, held), and a failure count. */
export interface RedisTiming {
  command (name: string): CommandTimer
  error (): void
}
export interface CommandTimer { observe (seconds: number): void }

const untimed: RedisTiming = { command: () => ({ observe () {} }), error () {} }

/** The replicas did not acknowledge a claim in time: it was released, the request not executed. */
export class NotReplicatedError extends StoreUnavailableError {
  constructor (readonly acked: number, readonly wanted: number) {
    super(`idempotency store: the claim reached ${acked} of ${wanted} replicas in time`)
  }
}

export class RedisStore implements IdempotencyStore {
  private readonly client: (Redis | Cluster) & Scripts
  private readonly prefix: string
  private readonly notify: boolean
  private readonly waitReplicas: number
  private readonly waitTimeoutMs: number
  private readonly onUnreplicated: (acked: number) => void
  private subscriber: Redis | Cluster | undefined
  private subscribing: Promise<Redis | Cluster> | undefined
  private readonly waiters = new Map<string, Set<() => void>>()
  private readonly timing: RedisTiming
  /** the scripts of one event-loop turn leave in one write */
  private readonly cork: TurnCork
  /** one timer per script (and WAIT), so a command only adds to plain numbers */
  private readonly timers: Record<'begin' | 'renew' | 'finish' | 'unknown' | 'release' | 'wait', CommandTimer>

  constructor (client: Redis | Cluster, o: RedisStoreOptions = {}) {
    this.prefix = o.keyPrefix ?? REDIS_KEY_PREFIX
    this.notify = o.notify ?? false
    this.waitReplicas = o.waitReplicas ?? 0
    this.waitTimeoutMs = o.waitTimeoutMs ?? IDEMPOTENCY_DEFAULTS.waitTimeoutMs
    this.onUnreplicated = o.onUnreplicated ?? (() => {})
    const timing = this.timing = o.timing ?? untimed
    this.timers = {
      begin: timing.command('idem_begin'),
      renew: timing.command('idem_renew'),
      finish: timing.command('idem_finish'),
      unknown: timing.command('idem_unknown'),
      release: timing.command('idem_release'),
      wait: timing.command('wait'),
    }
    const c = client as Redis & Partial<Scripts>
    if (c.claylbIdemBeginBuffer === undefined) {
      c.defineCommand('claylbIdemBegin', { numberOfKeys: 1, lua: BEGIN })
      c.defineCommand('claylbIdemRenew', { numberOfKeys: 1, lua: RENEW })
      c.defineCommand('claylbIdemFinish', { numberOfKeys: 1, lua: FINISH })
      c.defineCommand('claylbIdemUnknown', { numberOfKeys: 1, lua: UNKNOWN })
      c.defineCommand('claylbIdemRelease', { numberOfKeys: 1, lua: RELEASE })
    }
    this.client = client as (Redis | Cluster) & Scripts
    this.cork = new TurnCork(client)
  }

  /** the Redis key of a record (exported for tests and operators) */
  keyOf (id: string): string {
    return `${this.prefix}idem:{${id}}`
  }

  private channelOf (id: string): string {
    return this.notify ? `${this.prefix}idem:{${id}}:settled` : ''
  }

  async begin (id: string, fingerprint: string, token: string, leaseMs: number, ttlMs: number, reclaim: boolean): Promise<StoreBegin> {
    const r = await this.call(this.timers.begin, this.sending(), this.client.claylbIdemBeginBuffer(this.keyOf(id), fingerprint, token, leaseMs, ttlMs, reclaim ? '1' : '0', this.channelOf(id)))
    const st = String(r[0])
    switch (st) {
      case 'p': {
        const fence = Number(r[1])
        await this.claimReplicated(id, token)
        return { kind: 'claimed', fence }
      }
      case 'm': return { kind: 'mismatch' }
      case 'c': return {
        kind: 'completed',
        response: { status: Number(String(r[1])), headers: decodeHeaders(String(r[2] ?? '[]')), body: Buffer.isBuffer(r[3]) ? r[3] : Buffer.alloc(0) },
      }
      case 't': return { kind: 'too-large', status: Number(String(r[1])) }
      case 'u': return { kind: 'unknown', remainingMs: Math.max(0, Number(r[1])) }
      default: return { kind: 'in-flight', remainingMs: Math.max(0, Number(r[1])), elapsedMs: Math.max(0, Number(r[2])) }
    }
  }

  /** WAIT after a claim: too few acknowledgements release it (nothing executed yet) and refuse. */
  private async claimReplicated (id: string, token: string): Promise<void> {
    if (this.waitReplicas === 0) return
    let acked: number
    try {
      acked = await this.call(this.timers.wait, performance.now(), this.replicas(id))
    } catch (err) {
      await this.release(id, token).catch(() => {})
      throw err
    }
    if (acked >= this.waitReplicas) return
    await this.release(id, token).catch(() => {})
    throw new NotReplicatedError(acked, this.waitReplicas)
  }

  /**
   * WAIT on the node that took the key's last write. A Cluster sends a keyless command to any node,
   * but a pipeline's commands all go to the node of its keys' slot: EXISTS names the slot.
   */
  private async replicas (id: string): Promise<number> {
    if (!this.client.isCluster) return await this.client.wait(this.waitReplicas, this.waitTimeoutMs)
    const replies = await this.client.pipeline().exists(this.keyOf(id)).wait(this.waitReplicas, this.waitTimeoutMs).exec()
    const [err, acked] = replies?.[1] ?? [new Error('WAIT: no reply')]
    if (err) throw err
    return Number(acked)
  }

  /** WAIT after a record: it executed, so the answer stands; a shortfall is reported, not refused. */
  private async recordReplicated (id: string, ok: boolean): Promise<boolean> {
    if (!ok || this.waitReplicas === 0) return ok
    const acked = await this.call(this.timers.wait, performance.now(), this.replicas(id)).catch(() => 0)
    if (acked < this.waitReplicas) this.onUnreplicated(acked)
    return ok
  }

  async renew (id: string, token: string, leaseMs: number, ttlMs: number): Promise<boolean> {
    return await this.call(this.timers.renew, this.sending(), this.client.claylbIdemRenew(this.keyOf(id), token, leaseMs, ttlMs)) === 1
  }

  async complete (id: string, token: string, response: StoredResponse, ttlMs: number): Promise<boolean> {
    const body = response.body.length === 0 ? '' : response.body
    return this.recordReplicated(id, await this.call(this.timers.finish, this.sending(), this.client.claylbIdemFinish(this.keyOf(id), token, ttlMs, this.channelOf(id), 'c', response.status, encodeHeaders(response.headers), body)) === 1)
  }

  async tooLarge (id: string, token: string, status: number, ttlMs: number): Promise<boolean> {
    return this.recordReplicated(id, await this.call(this.timers.finish, this.sending(), this.client.claylbIdemFinish(this.keyOf(id), token, ttlMs, this.channelOf(id), 't', status, '', '')) === 1)
  }

  async markUnknown (id: string, token: string, ttlMs: number): Promise<boolean> {
    return await this.call(this.timers.unknown, this.sending(), this.client.claylbIdemUnknown(this.keyOf(id), token, ttlMs, this.channelOf(id))) === 1
  }

  async release (id: string, token: string): Promise<boolean> {
    return await this.call(this.timers.release, this.sending(), this.client.claylbIdemRelease(this.keyOf(id), token, this.channelOf(id))) === 1
  }

  /**
   * Called in the argument list before the command's own (arguments are evaluated in order): corks
   * the socket for this turn before the command is written, and is the command's start time
   */
  private sending (): number {
    this.cork.hold()
    return performance.now()
  }

  /** `t0` is read before the command is sent (arguments are evaluated in order): no closure per call */
  private async call<T> (timer: CommandTimer, t0: number, p: Promise<T>): Promise<T> {
    try {
      return await p
    } catch (err) {
      this.timing.error()
      throw new StoreUnavailableError(`idempotency store: ${(err as Error).message}`, { cause: err })
    } finally {
      timer.observe((performance.now() - t0) / 1000)
    }
  }

  /** One subscriber connection for all waiters of this store, made on first use. */
  private sub (): Promise<Redis | Cluster> {
    this.subscribing ??= (async () => {
      const s = this.client.duplicate()
      this.subscriber = s
      s.on('error', () => { /* reported through the commands that fail */ })
      s.on('message', (channel: string) => {
        const set = this.waiters.get(channel)
        if (set !== undefined) for (const w of set) w()
      })
      if (s.status !== 'ready') await new Promise<void>((resolve, reject) => { s.once('ready', resolve); s.once('end', () => reject(new Error('subscriber closed'))) })
      return s
    })()
    return this.subscribing
  }

  async waitSettled (id: string, ms: number): Promise<void> {
    if (!this.notify) return new Promise((resolve) => setTimeout(resolve, ms))
    const channel = this.channelOf(id)
    let wake!: () => void
    const woken = new Promise<void>((resolve) => { wake = resolve })
    const t = setTimeout(wake, ms)
    let set = this.waiters.get(channel)
    const first = set === undefined
    if (set === undefined) this.waiters.set(channel, set = new Set())
    set.add(wake)
    try {
      const s = await this.sub()
      if (first) await s.subscribe(channel)
      await woken
    } catch {
      // no subscriber: the caller re-checks the record when the time is up
      await woken
    } finally {
      clearTimeout(t)
      set.delete(wake)
      if (set.size === 0 && this.waiters.get(channel) === set) {
        this.waiters.delete(channel)
        this.subscriber?.unsubscribe(channel).catch(() => {})
      }
    }
  }

  async close (): Promise<void> {
    if (this.subscriber !== undefined) this.subscriber.disconnect()
  }
}
