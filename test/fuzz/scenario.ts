/**
 * What the differential fuzzer plays: a scenario is client connections run one after another through
 * one claylb; each request carries the upstream's answer script. Ids are not generated: the runner
 * numbers every request from a counter that never repeats for the life of the file, and every value a
 * request or its answer carries is marked `~id~`, so a byte of one message found in another names its
 * source. (test/fuzz/arbitraries generates scenarios, test/fuzz/bytes writes them.)
 */
import type { Fields } from './wire.js'

export interface BodySpec {
  kind: 'none' | 'length' | 'chunked'
  data: string
  /** chunk size the client writes */
  chunk: number
  trailers: Fields
}

export interface AnswerSpec {
  /** interim answers before the final one (100, 102, 103, 199) */
  interim: Array<{ status: number, headers: Fields }>
  status: number
  reason: string
  headers: Fields
  /** `connection: x-hop` and an `x-hop` header the proxy must drop */
  connectionList: boolean
  framing: 'length' | 'chunked' | 'close'
  body: string
  chunk: number
  trailers: Fields
  /** answered as soon as the request head arrived, before its body was read */
  early: boolean
  /** the first delivery of the request is answered with a TCP RST (after it was read whole) */
  reset: boolean
}

export interface RequestSpec {
  method: string
  /** the path after /fz/~id~/ */
  seg: string
  headers: Fields
  /** `Connection: x-drop` and an `x-drop` header the proxy must drop */
  connectionList: boolean
  body: BodySpec
  expect: boolean
  /** HTTP/1.0: `Connection: keep-alive` */
  keepAlive: boolean
  /** HTTP/1.0: send a Host (always sent on 1.1) */
  host: boolean
  /** sequential connections only: the client hangs up (FIN or RST) right after sending it */
  abort: 'none' | 'fin' | 'rst'
  answer: AnswerSpec
}

export type Version = '1.0' | '1.1' | '2'

export interface ConnSpec {
  /** '2': an HTTP/2 session; `pipelined`: its streams all at once */
  version: Version
  /** every request written at once (else one at a time, each after the answer before it) */
  pipelined: boolean
  reqs: RequestSpec[]
  /** a plain GET after the others (test/fuzz/run PROBE): bytes left over before its answer are a desync */
  probe: boolean
}

export interface Scenario {
  conns: ConnSpec[]
  /** the connections all at once (claylb then opens several upstream connections and reuses them in any order), else one after another */
  concurrent?: boolean
}

export const HOST = 'fz.test'
export const marker = (id: number): string => `~${id}~`

/** every `~id~` in a text */
export function markersIn (text: string): number[] {
  return [...text.matchAll(/~(\d+)~/g)].map((m) => Number(m[1]))
}

/** the id a request target names (its first marker) */
export function idOf (target: string): number | undefined {
  const m = /^\/fz\/~(\d+)~\//.exec(target)
  return m === null ? undefined : Number(m[1])
}

/** A plain request (GET, no body, answered 200 with a length) with `o` over it: for hand-written scenarios. */
export function requestSpec (o: Partial<Omit<RequestSpec, 'answer' | 'body'>> & { body?: Partial<BodySpec>, answer?: Partial<AnswerSpec> } = {}): RequestSpec {
  return {
    method: 'GET', seg: '', headers: [], connectionList: false, expect: false, keepAlive: true, host: true, abort: 'none',
    ...o,
    body: { kind: 'none', data: '', chunk: 1000, trailers: [], ...o.body },
    answer: { interim: [], status: 200, reason: 'OK', headers: [], connectionList: false, framing: 'length', body: '', chunk: 1000, trailers: [], early: false, reset: false, ...o.answer },
  }
}

/** A scenario as compact JSON (a run of one character as `y×500`), for failure reports. */
export function describe (s: Scenario | undefined): string {
  return JSON.stringify(s, (_k, v: unknown) => typeof v === 'string' && v.length > 12 && /^(.)\1+$/.test(v) ? `${v[0]}×${v.length}` : v)
}
