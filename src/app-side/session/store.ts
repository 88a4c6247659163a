/**
 * @module session/store
 * Sessions for a plain node:http app (and so for any framework built on it):
 *
 *   const store = createSessionStore({ redis, secrets })
 *   const s = await store.session(req, res)   // throws StateUnavailableError (503) when Redis is down
 *   s.set('user', 'ada'); await s.increment('visits')
 *
 * One Redis hash per session under `<keyPrefix>sess:{<id>}` (the id is the hash tag, so each session
 * lives in one Cluster slot and sessions spread over all of them). Loading costs one round trip
 * (HGETALL + PEXPIRE pipelined: the TTL refresh); an unchanged session costs nothing more. Changes
 * are written as deltas by one script before the response starts. A request whose session another
 * request ended (regenerate, destroy) writes nothing and sends no cookie (Session#ended).
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { TLSSocket } from 'node:tls'
import { ProxyError, sendProblem } from '../../shared/errors.js'
import { key } from '../../shared/redis/keys.js'
import { defineScript, type Script } from '../../shared/redis/scripts.js'
import type { RedisClient } from '../../shared/redis/client.js'
import { toStateError } from '../../shared/redis/errors.js'
import { clearCookieHeader, newSessionId, readCookie, setCookieHeader, signId, verifySigned } from './cookie.js'
import { holdResponse } from './hold.js'
import { SAVE_LUA, TAKE_LUA } from './scripts.js'
import { Session, type SaveReply, type SessionBackend } from './session.js'
import { checkSecrets, readSecrets, SessionSecretError } from './secret.js'
import type { Config } from '../../shared/config/schema.js'
import { REDIS_KEY_PREFIX, SESSION_DEFAULTS } from '../../shared/defaults.js'

export interface SessionStoreOptions {
  redis: RedisClient
  /** signing secrets: the first signs, all verify (>= 32 characters each) */
  secrets: readonly string[]
  /** prefix of every key (default `claylb:`) */
  keyPrefix?: string
  /** cookie name (default `sid`) */
  cookie?: string
  /** idle lifetime, refreshed on every use (default 1800) */
  ttlSeconds?: number
  /** most bytes (field names + JSON values) one session may hold; 0 = no limit (default 65536) */
  maxBytes?: number
  /** the cookie's Secure attribute; 'auto' (default): when the request came over https (or x-forwarded-proto says so) */
  secure?: boolean | 'auto'
}

const STALE_ON_FAILURE = new Set(['set-cookie', 'etag', 'last-modified', 'location', 'transfer-encoding'])


export class SessionStore implements SessionBackend {
  readonly maxBytes: number
  readonly cookieName: string
  readonly ttlMs: number
  #redis: RedisClient
  #secrets: readonly string[]
  #prefix: string
  #secure: boolean | 'auto'
  #save: Script<SaveReply>
  #take: Script<[string, string[]?]>
  #sessions = new WeakMap<IncomingMessage, Promise<Session>>()

  constructor (o: SessionStoreOptions) {
    this.#secrets = checkSecrets(o.secrets, 'createSessionStore: secrets')
    this.#redis = o.redis
    this.#prefix = `${o.keyPrefix ?? REDIS_KEY_PREFIX}sess:`
    this.cookieName = o.cookie ?? SESSION_DEFAULTS.cookie
    this.ttlMs = (o.ttlSeconds ?? SESSION_DEFAULTS.ttlSeconds) * 1000
    this.maxBytes = o.maxBytes ?? SESSION_DEFAULTS.maxBytes
    this.#secure = o.secure ?? SESSION_DEFAULTS.secure
    this.#save = defineScript(o.redis, 'claylbSessionSave', 2, SAVE_LUA, { writes: true })
    this.#take = defineScript(o.redis, 'claylbSessionTake', 2, TAKE_LUA, { writes: true })
  }

  /**
   * The session of this request (the same object for every call with the same request). Its changes are
   * saved before the response starts; a save that fails then answers 503 instead of the app's response.
   * Rejects with StateUnavailableError (a ProxyError, 503) when Redis cannot be read: never an empty
   * session that the app would then overwrite.
   */
  readonly session = (req: IncomingMessage, res: ServerResponse): Promise<Session> => {
    let s = this.#sessions.get(req)
    if (!s) {
      s = this.#load(req, res)
      this.#sessions.set(req, s)
      s.catch(() => this.#sessions.delete(req))
    }
    return s
  }

  newId (): string { return newSessionId() }

  #keys (id: string): [string, string] {
    return [key(this.#prefix, id), key(this.#prefix, id, ':dead')]
  }

  async #load (req: IncomingMessage, res: ServerResponse): Promise<Session> {
    const raw = readCookie(req.headers.cookie, this.cookieName)
    const id = raw === undefined ? undefined : verifySigned(raw, this.#secrets)
    let session: Session | undefined
    if (id !== undefined) {
      const stored = await this.#read(id)
      if (stored === 'ended') session = new Session(this, newSessionId(), undefined, id)
      else if (stored) session = new Session(this, id, stored)
    }
    session ??= new Session(this, newSessionId())
    const secure = this.#secure === 'auto'
      ? (req.socket as TLSSocket).encrypted === true || req.headers['x-forwarded-proto'] === 'https'
      : this.#secure
    holdResponse(res, (phase) => this.#beforeResponse(session, res, phase, secure), (err) => this.#fail(res, err))
    return session
  }

  /**
   * One round trip: the data and the TTL refresh. An empty hash is an unknown, expired or ended
   * session; only then a second one asks whether it was ended (its tombstone, which outlives the hash,
   * was set in the same step that deleted it): 'ended' when so, else undefined.
   */
  async #read (id: string): Promise<Record<string, string> | 'ended' | undefined> {
    const [hash, dead] = this.#keys(id)
    let results
    try {
      results = await this.#redis.pipeline().hgetall(hash).pexpire(hash, this.ttlMs).exec()
    } catch (err) {
      throw toStateError(err, 'session store')
    }
    const [read] = results ?? []
    if (!read || read[0]) throw toStateError(read?.[0] ?? new Error('no reply'), 'session store')
    const stored = read[1] as Record<string, string>
    for (const _ in stored) return stored
    let tombstone: number
    try {
      tombstone = await this.#redis.exists(dead)
    } catch (err) {
      throw toStateError(err, 'session store')
    }
    return tombstone === 1 ? 'ended' : undefined
  }

  #beforeResponse (session: Session, res: ServerResponse, phase: 'start' | 'end', secure: boolean): Promise<void> | undefined {
    if (session.dirty) {
      return session.save().then(() => { if (phase === 'start') this.#setCookie(session, res, secure) })
    }
    if (phase === 'start') this.#setCookie(session, res, secure)
    return undefined
  }

  #setCookie (session: Session, res: ServerResponse, secure: boolean): void {
    const action = session.cookieAction()
    if (action === undefined || res.headersSent) return
    const attrs = { name: this.cookieName, secure }
    res.appendHeader('set-cookie', action === 'set' ? setCookieHeader(signId(session.id, this.#secrets[0]!), attrs) : clearCookieHeader(attrs))
  }

  #fail (res: ServerResponse, err: unknown): void {
    if (!(err instanceof ProxyError) || res.headersSent) {
      res.destroy(err as Error)
      return
    }
    // what described the app's answer must not describe the problem (x-worker-id and the like stay)
    for (const name of res.getHeaderNames()) {
      if (name.startsWith('content-') || STALE_ON_FAILURE.has(name)) res.removeHeader(name)
    }
    sendProblem(res, err)
  }

  async save (id: string, mustExist: boolean, sets: ReadonlyMap<string, string>, dels: ReadonlySet<string>, increment?: [string, number]): Promise<SaveReply> {
    const args: Array<string | number> = [mustExist ? '1' : '0', this.ttlMs, this.maxBytes, sets.size, dels.size, increment ? 1 : 0]
    for (const [field, json] of sets) args.push(field, json)
    for (const field of dels) args.push(field)
    if (increment) args.push(increment[0], increment[1])
    return this.#save(this.#keys(id), args)
  }

  async take (id: string): Promise<Record<string, string> | undefined> {
    const [status, flat] = await this.#take(this.#keys(id), [this.ttlMs])
    if (status !== 'ok') return undefined
    const out: Record<string, string> = {}
    for (let i = 0; i + 1 < (flat?.length ?? 0); i += 2) out[flat![i]!] = flat![i + 1]!
    return out
  }
}

export function createSessionStore (options: SessionStoreOptions): SessionStore {
  return new SessionStore(options)
}

/** A store for `config.session` / `config.redis.keyPrefix`, secrets read from `session.secretEnv`. */
export function sessionStoreFromConfig (config: Pick<Config, 'session' | 'redis'>, redis: RedisClient, env: NodeJS.ProcessEnv = process.env): SessionStore {
  const secrets = readSecrets(config.session.secretEnv, env)
  if (!secrets) throw new SessionSecretError(`${config.session.secretEnv} is not set: sessions need a signing secret`)
  return new SessionStore({
    redis,
    secrets,
    keyPrefix: config.redis.keyPrefix,
    cookie: config.session.cookie,
    ttlSeconds: config.session.ttlSeconds,
    maxBytes: config.session.maxBytes,
    secure: config.session.secure,
  })
}
