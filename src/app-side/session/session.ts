/**
 * @module session/session
 * One request's view of one session: the data as loaded, plus the changes this request made, kept as
 * deltas (fields set, fields deleted) so that a save writes only those and never overwrites what a
 * concurrent request of the same session changed. Counters are incremented in Redis at once.
 */
import { SessionEndedError, SessionTooLargeError, SessionUsageError } from './errors.js'

export type SaveReply = [string, ...unknown[]]

/** What a Session needs from its store. */
export interface SessionBackend {
  readonly maxBytes: number
  newId (): string
  save (id: string, mustExist: boolean, sets: ReadonlyMap<string, string>, dels: ReadonlySet<string>, increment?: [string, number]): Promise<SaveReply>
  /** delete + tombstone; the data it held, or undefined when it was already ended */
  take (id: string): Promise<Record<string, string> | undefined>
}

/** The version field of the hash; app field names may not start with `$`. */
export const VERSION_FIELD = '$v'

function checkField (field: string): void {
  if (typeof field !== 'string' || field.length === 0 || field.startsWith('$')) {
    throw new SessionUsageError(`session field names must be non-empty strings not starting with "$": ${JSON.stringify(field)}`)
  }
}

export class Session {
  #backend: SessionBackend
  #id: string
  /** the id the client's cookie named, when it existed at load or had been ended (its cookie may be cleared) */
  #clientId: string | undefined
  /** the hash exists in Redis (loaded, or written by this request) */
  #existing: boolean
  #version = 0
  #data = new Map<string, unknown>()
  /** bytes per field (name + JSON value), for the size budget */
  #sizes = new Map<string, number>()
  #bytes = 0
  #sets = new Map<string, string>()
  #dels = new Set<string>()
  /**
   * Another request ended the session this one works on (regenerate, destroy, expiry), or the client's
   * cookie named an already ended one: nothing this request writes may be saved, and it sends no
   * cookie, else a request that started before a login would undo it (clear the cookie, or set one of
   * a new session) when it finished after. Refused rather than folded into the new session: the writes
   * of a request made before the privilege change must not land in the session after it (fixation).
   * Cleared only by this request's own regenerate() or destroy(), which start a session afresh.
   */
  #ended: boolean

  /**
   * @internal — sessions are made by SessionStore.session(). `endedId`: the cookie named this session,
   * already ended; the request then works on a new, empty session (`id`) that cannot be saved.
   */
  constructor (backend: SessionBackend, id: string, stored?: Record<string, string>, endedId?: string) {
    this.#backend = backend
    this.#id = id
    this.#ended = endedId !== undefined
    this.#existing = stored !== undefined
    this.#clientId = stored !== undefined ? id : endedId
    if (stored) {
      for (const [field, json] of Object.entries(stored)) {
        if (field === VERSION_FIELD) { this.#version = Number(json); continue }
        let value: unknown
        try { value = JSON.parse(json) } catch { continue }
        this.#data.set(field, value)
        this.#size(field, json)
      }
    }
  }

  /** The session id (the cookie carries it signed). */
  get id (): string { return this.#id }
  /** True until the session exists in Redis (nothing stored yet). */
  get isNew (): boolean { return !this.#existing }
  /** Bumped by every save that reached Redis. */
  get version (): number { return this.#version }
  /**
   * True when another request ended this session while this one ran (a login's regenerate, a logout,
   * expiry), or the cookie named a session already ended: saves are refused with SessionEndedError
   * (409) and no cookie is sent. This request's own regenerate() or destroy() starts afresh.
   */
  get ended (): boolean { return this.#ended }
  /** Changes not yet written (they are written before the response starts, or by save()). */
  get dirty (): boolean { return this.#sets.size > 0 || this.#dels.size > 0 }

  get<T = unknown> (field: string): T | undefined {
    return this.#data.get(field) as T | undefined
  }

  has (field: string): boolean { return this.#data.has(field) }

  /** All fields as a plain object. */
  all (): Record<string, unknown> { return Object.fromEntries(this.#data) }
  toJSON (): Record<string, unknown> { return this.all() }

  /** Set a field to a JSON value (`undefined` deletes it). Throws SessionTooLargeError over `maxBytes`. */
  set (field: string, value: unknown): void {
    checkField(field)
    if (value === undefined) return this.delete(field)
    const json = JSON.stringify(value)
    if (json === undefined) throw new SessionUsageError(`session field "${field}": value is not JSON-serialisable`)
    const bytes = this.#bytes - (this.#sizes.get(field) ?? 0) + Buffer.byteLength(field) + Buffer.byteLength(json)
    if (this.#backend.maxBytes > 0 && bytes > this.#backend.maxBytes) throw new SessionTooLargeError(bytes, this.#backend.maxBytes)
    this.#sets.set(field, json)
    this.#dels.delete(field)
    this.#data.set(field, JSON.parse(json))
    this.#size(field, json)
  }

  delete (field: string): void {
    checkField(field)
    this.#sets.delete(field)
    this.#dels.add(field)
    this.#data.delete(field)
    this.#size(field, undefined)
  }

  /**
   * Add `by` to an integer field atomically in Redis (HINCRBY; a missing field counts as 0) and return
   * the new value. Pending changes are written in the same step. Concurrent increments never lose a step.
   */
  async increment (field: string, by = 1): Promise<number> {
    checkField(field)
    if (!Number.isSafeInteger(by)) throw new SessionUsageError(`increment of "${field}": by must be a safe integer`)
    const pending = this.#sets.get(field)
    if (pending !== undefined) {
      // A session not in Redis yet (new, or just regenerated: its data moved here) has no stored value
      // to add to, so the pending one is the whole truth and folds into the step. On a stored session
      // a set and an increment of one field would race other requests' increments: refused.
      const value = JSON.parse(pending) as unknown
      if (this.#existing || typeof value !== 'number' || !Number.isSafeInteger(value + by)) {
        throw new SessionUsageError(`session field "${field}" was set and incremented in one request; increment only`)
      }
      this.#sets.delete(field)
      return (await this.#commit([field, value + by]))!
    }
    return (await this.#commit([field, by]))!
  }

  /** Write pending changes now (otherwise done before the response starts). */
  async save (): Promise<void> {
    if (this.dirty) await this.#commit()
  }

  /**
   * Issue a new id (against session fixation: call it on login and any privilege change). The old id
   * is ended at once (a tombstone; its cookie no longer loads anything) and the data moves to the new
   * id, latest version included; `keep` lists the fields to keep (default: all).
   */
  async regenerate (options: { keep?: readonly string[] } = {}): Promise<void> {
    const base = new Map<string, string>()
    if (this.#existing) {
      for (const [field, json] of Object.entries(await this.#backend.take(this.#id) ?? {})) {
        if (field !== VERSION_FIELD) base.set(field, json)
      }
    }
    for (const [field, json] of this.#sets) base.set(field, json)
    for (const field of this.#dels) base.delete(field)
    const keep = options.keep ? new Set(options.keep) : undefined
    this.#reset()
    for (const [field, json] of base) {
      if (keep && !keep.has(field)) continue
      this.#sets.set(field, json)
      this.#data.set(field, JSON.parse(json))
      this.#size(field, json)
    }
  }

  /**
   * End this session: its data is deleted and its id tombstoned, so a slower request of the same session
   * can never save into it again, and its cookie is cleared. The object goes on as a new, empty session.
   * The clear goes out even when another request ended the session first (a logout racing a login):
   * a logout the user asked for is never dropped.
   */
  async destroy (): Promise<void> {
    if (this.#existing) await this.#backend.take(this.#id)
    this.#reset()
  }

  /** @internal: what the response's Set-Cookie must do */
  cookieAction (): 'set' | 'clear' | undefined {
    // whatever an ended session's request would set (a new id, a clear) undoes the request that ended it
    if (this.#ended) return undefined
    if (this.#existing) return this.#id === this.#clientId ? undefined : 'set'
    return this.#clientId !== undefined ? 'clear' : undefined
  }

  /** A fresh, empty, unsaved session with a new id (this request's own regenerate or destroy). */
  #reset (): void {
    this.#ended = false
    this.#id = this.#backend.newId()
    this.#existing = false
    this.#version = 0
    this.#data.clear()
    this.#sizes.clear()
    this.#bytes = 0
    this.#sets = new Map()
    this.#dels = new Set()
  }

  #size (field: string, json: string | undefined): void {
    this.#bytes -= this.#sizes.get(field) ?? 0
    if (json === undefined) {
      this.#sizes.delete(field)
    } else {
      const n = Buffer.byteLength(field) + Buffer.byteLength(json)
      this.#sizes.set(field, n)
      this.#bytes += n
    }
  }

  async #commit (increment?: [string, number]): Promise<number | undefined> {
    const sets = this.#sets
    const dels = this.#dels
    this.#sets = new Map()
    this.#dels = new Set()
    if (this.#ended) throw new SessionEndedError()
    let reply
    try {
      reply = await this.#backend.save(this.#id, this.#existing, sets, dels, increment)
    } catch (err) {
      // keep what was not changed again meanwhile, so a later save() can still write it
      for (const [f, json] of sets) if (!this.#sets.has(f) && !this.#dels.has(f)) this.#sets.set(f, json)
      for (const f of dels) if (!this.#sets.has(f) && !this.#dels.has(f)) this.#dels.add(f)
      throw err
    }
    switch (reply[0]) {
      case 'ok': {
        this.#existing = true
        this.#version = Number(reply[1])
        if (!increment) return undefined
        const value = Number(reply[2])
        this.#data.set(increment[0], value)
        this.#size(increment[0], String(value))
        return value
      }
      case 'destroyed':
      case 'gone':
        // Ended by someone else meanwhile (or expired): that wins. The script wrote nothing; this
        // request's changes are refused, and it must not start a session of its own either (see #ended).
        this.#ended = true
        throw new SessionEndedError()
      case 'too_large':
        throw new SessionTooLargeError(Number(reply[1]), this.#backend.maxBytes)
      case 'not_integer':
        throw new SessionUsageError(`session field "${String(reply[1])}" is not an integer and cannot be incremented`)
      default:
        throw new Error(`unexpected reply from the session save script: ${JSON.stringify(reply)}`)
    }
  }
}
