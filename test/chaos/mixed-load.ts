/**
 * The chaos suite's client: for a bounded time, idempotent GETs, sequential session increments on one
 * cookie jar, and keyed POST /orders retried until a 2xx, all through claylb, while a fault runs beside
 * them. It records every non-2xx answer and whether it is a documented problem+json.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { Agent, request } from 'undici'
import { PROBLEMS, PROBLEM_TYPE_BASE } from '../../src/shared/errors.js'
import { sleep } from '../helpers/http.js'

const DOCUMENTED = new Set(Object.values(PROBLEMS).map(([, , slug]) => PROBLEM_TYPE_BASE + slug))
export const problem = (slug: string): string => PROBLEM_TYPE_BASE + slug

export const rssKiB = (pid: number): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1])
export const fdCount = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length

export interface Reply { status: number, type: string, body: string, at: number, replayed?: boolean, /** the Idempotency-Key sent */ key?: string, /** the claylb it went to, when there are several */ base?: string, /** when a transport error ended it */ failedAt?: number }

export interface MixedResult {
  gets: number
  failedGets: Reply[]
  /** the count each successful increment answered, in order */
  sessionCounts: number[]
  sessionFailed: number
  cookie: string
  keys: number
  /** keys that saw a 502, a 504 or a 409 outcome-unknown on the way (each still runs at most once) */
  uncertainKeys: number
  /** keys whose final answer is the 409 outcome-unknown: the order ran once or not at all */
  outcomeUnknownKeys: number
  /** keys whose stored answer is the app's 500 state-outcome-unknown: the order ran once or not at all */
  unknownKeys: number
  abandoned: string[]
  /** every non-2xx answer: "METHOD path status type" → count ("… @base" with several hosts) */
  failures: Record<string, number>
  /** with several hosts: the 2xx answers, "METHOD path @base" → count */
  answered: Record<string, number>
  /** non-2xx answers that were not a documented problem+json, and transport errors */
  undocumented: string[]
  /** every non-2xx answer with when it was sent */
  problems: Reply[]
  latenciesMs: number[]
  /** of `gets`, those sent by the slow lanes */
  slowGets?: number
}

/** GET lanes on a slow route (e.g. the demo's /delay/400), so every drain has requests in flight */
export interface SlowGets { lanes: number, path: string }

/** Several claylb hosts (scale-out): each request goes to the next one in turn, a retry to another. */
export interface Spread { bases: readonly string[], /** ends the load (and the fault) now */ stopped?: () => boolean }

/**
 * Whether the fault should go on. It is paced by progress, not by the clock alone: it goes on while the
 * load's minimum time lasts, and past it for as long as the fault says its goal is not met yet (a busy
 * machine reaches the goal later, never not at all), up to a hard cap after which it must stop.
 */
export type FaultRunning = (goalMet?: boolean) => boolean

/**
 * The least load every scenario asserts it sent (the harness checks "more than"): the load goes on past
 * its minimum time until it has sent that much, as a busy machine sends less per second.
 */
export const MIN_LOAD = { gets: 100, sessionIncrements: 20, keys: 10 }

/** how long past its minimum time the load may go on while a fault has not reached its goal */
export const OVERTIME_MS = Number(process.env['CLAYLB_CHAOS_OVERTIME_MS'] ?? 120_000)

/**
 * Runs the three client kinds against `base`, `fault` alongside, for at least `seconds` and until the
 * fault has returned (so the last fault is always seen under load). `fault` receives `running` and the
 * live result, so it can pace itself by requests served and answers seen.
 */
export async function mixedLoad (base: string, seconds: number, fault: (running: FaultRunning, live: MixedResult) => Promise<void>, slow?: SlowGets, spread?: Spread): Promise<MixedResult> {
  const agent = new Agent({ keepAliveTimeout: 2000, connections: 32 })
  const r: MixedResult = { gets: 0, failedGets: [], sessionCounts: [], sessionFailed: 0, cookie: '', keys: 0, uncertainKeys: 0, outcomeUnknownKeys: 0, unknownKeys: 0, abandoned: [], failures: {}, answered: {}, undocumented: [], problems: [], latenciesMs: [] }
  let turn = 0
  const call = async (method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<Reply> => {
    const to = spread === undefined ? base : spread.bases[turn++ % spread.bases.length]!
    const where = spread === undefined ? '' : ` @${to}`
    const at = Date.now()
    const started = performance.now()
    try {
      const res = await request(to + path, { method: method as 'GET', headers, body, dispatcher: agent })
      const text = await res.body.text()
      r.latenciesMs.push(performance.now() - started)
      const reply: Reply = { status: res.statusCode, type: '', body: text, at, replayed: res.headers['idempotent-replayed'] === 'true' }
      if (headers['idempotency-key'] !== undefined) reply.key = headers['idempotency-key']
      if (spread !== undefined) {
        reply.base = to
        if (res.statusCode < 300) r.answered[`${method} ${path}${where}`] = (r.answered[`${method} ${path}${where}`] ?? 0) + 1
      }
      if (res.statusCode >= 300) {
        try { reply.type = String((JSON.parse(text) as { type?: unknown }).type) } catch { reply.type = '(not json)' }
        const kind = `${method} ${path} ${res.statusCode} ${reply.type}${where}`
        r.failures[kind] = (r.failures[kind] ?? 0) + 1
        r.problems.push(reply)
        if (!String(res.headers['content-type']).startsWith('application/problem+json') || !DOCUMENTED.has(reply.type)) {
          r.undocumented.push(`${kind} ${String(res.headers['content-type'])} ${text.slice(0, 200)}`)
        }
      }
      return reply
    } catch (err) {
      const kind = `${method} ${path} transport ${(err as Error).message}${where}`
      r.failures[kind] = (r.failures[kind] ?? 0) + 1
      r.undocumented.push(kind)
      const reply: Reply = { status: 0, type: `transport ${(err as { code?: string }).code ?? ''}`, body: '', at, failedAt: Date.now() }
      if (spread !== undefined) reply.base = to
      return reply
    }
  }

  // the cookie first, so every increment of the lane is on one session
  const first = await request(base + '/session/counter', { method: 'POST', dispatcher: agent })
  r.sessionCounts.push((JSON.parse(await first.body.text()) as { count: number }).count)
  r.cookie = ([] as string[]).concat(first.headers['set-cookie'] ?? [])[0]!.split(';')[0]!

  const deadline = Date.now() + seconds * 1000
  const cap = deadline + OVERTIME_MS
  let faultDone = false
  const stopped = (): boolean => spread?.stopped?.() === true
  const faultRunning: FaultRunning = (goalMet = true) => !stopped() && Date.now() < cap && (Date.now() < deadline || !goalMet)
  const enough = (): boolean => r.gets > MIN_LOAD.gets && r.sessionCounts.length > MIN_LOAD.sessionIncrements && r.keys > MIN_LOAD.keys
  const running = (): boolean => !stopped() && (Date.now() < deadline || !faultDone || (!enough() && Date.now() < cap))

  // a slow lane's route is slow already: it sends back to back and is counted apart as well
  const getLane = async (path = '/', slow = false): Promise<void> => {
    while (running()) {
      const a = await call('GET', path)
      r.gets++
      if (slow) r.slowGets = (r.slowGets ?? 0) + 1
      if (a.status !== 200) r.failedGets.push(a)
      if (!slow) await sleep(5)
    }
  }
  const sessionLane = async (): Promise<void> => {
    while (running()) {
      const a = await call('POST', '/session/counter', { cookie: r.cookie })
      if (a.status === 200) r.sessionCounts.push((JSON.parse(a.body) as { count: number }).count)
      else r.sessionFailed++
      await sleep(10)
    }
  }
  const orderLane = async (lane: number): Promise<void> => {
    let n = 0
    while (running()) {
      const key = `chaos-${process.pid}-${Date.now().toString(36)}-${lane}-${++n}`
      r.keys++
      let uncertain = false
      let done = false
      let last: Reply | undefined
      const firstAt = Date.now()
      for (let attempt = 1; attempt <= 60 && !done; attempt++) {
        const a = last = await call('POST', '/orders', { 'content-type': 'application/json', 'idempotency-key': key }, '{"amount":10,"item":"book"}')
        if (a.status >= 200 && a.status < 300) done = true
        else if (a.type === problem('state-outcome-unknown')) {
          // the app lost its write's reply: that answer is stored and replayed, the key is settled
          r.unknownKeys++
          done = true
        } else if (a.type === problem('outcome-unknown')) {
          // final: claylb never runs it again (a route whose upstream dedupes is forwarded again instead)
          r.outcomeUnknownKeys++
          uncertain = true
          done = true
        } else {
          // the order may have run: a 502, a 504, or a connection that broke (a claylb host died
          // mid-request); a refused connection never ran it
          if (a.status === 502 || a.status === 504 || (a.status === 0 && a.type !== 'transport ECONNREFUSED')) uncertain = true
          await sleep(Math.min(50 * attempt, 300))
        }
      }
      if (uncertain) r.uncertainKeys++
      if (!done) r.abandoned.push(`${key}: retried from ${new Date(firstAt).toISOString()}, last ${last?.status}${last?.replayed === true ? ' (replayed)' : ''} ${last?.body}`)
    }
  }

  const slowLanes = Array.from({ length: slow?.lanes ?? 0 }, () => getLane(slow!.path, true))
  const faulting = fault(faultRunning, r).finally(() => { faultDone = true })
  await Promise.all([getLane(), getLane(), sessionLane(), orderLane(1), orderLane(2), ...slowLanes, faulting])
  await agent.close()
  return r
}

export function percentile (sorted: number[], p: number): number {
  return Math.round(sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]! * 10) / 10
}
