/**
 * Plays one generated scenario through the running claylb: numbers its requests, registers each
 * answer script with the recording upstream, and runs the client connections one after another on raw
 * sockets (pipelined: every request in one write; else each after the answer before it, with
 * `Expect: 100-continue` honoured and client hang-ups). What each client received and what the
 * upstream received are returned for the oracle; nothing is judged here.
 */
import { H1Client, h2Connect, h2Exchange, type H2Stream } from './client.js'
import { h2Request, requestBytes } from './bytes.js'
import { requestSpec, type ConnSpec, type RequestSpec, type Scenario } from './scenario.js'
import type { RecordingUpstream, Received } from './upstream.js'
import { takeAnswers } from './wire.js'

/** One request as played: its id and spec. */
export interface Played {
  id: number
  spec: RequestSpec
  /** the client hung up right after sending it */
  aborted: boolean
}

export interface ClientRun {
  version: ConnSpec['version']
  pipelined: boolean
  reqs: Played[]
  /** every byte the client received (latin1) */
  raw: string
  closed: boolean
  /** what the client was still waiting for when the hang guard fired */
  stalled: string | undefined
  /** HTTP/2: what each stream received, in request order */
  streams: H2Stream[]
}

export interface Observation {
  clients: ClientRun[]
  upstream: Received[]
  upstreamErrors: string[]
}

/** after every connection's generated requests, a plain GET whose answer must come next: junk before it is a desync */
export const PROBE: RequestSpec = requestSpec({ seg: 'probe', answer: { body: 'probe' } })

let nextId = 1

/**
 * `idle` resolves once claylb has nothing in flight: a request whose client hung up may still be
 * upstream (or retried there) for a moment, and must arrive in its own run, not in the next.
 */
export async function play (scenario: Scenario, port: number, upstream: RecordingUpstream, waitMs: number, idle: () => Promise<void>): Promise<Observation> {
  const from = upstream.received.length
  const errorsFrom = upstream.errors.length
  const clients: ClientRun[] = []
  try {
    const planned = scenario.conns.map((conn) => {
      const reqs: Played[] = [...conn.reqs, ...conn.probe ? [PROBE] : []].map((spec) => ({ id: nextId++, spec, aborted: false }))
      for (const r of reqs) upstream.scripts.set(r.id, { id: r.id, answer: r.spec.answer, deliveries: 0 })
      return { conn, reqs }
    })
    const one = ({ conn, reqs }: typeof planned[number]): Promise<ClientRun> =>
      conn.version === '2' ? playH2(conn, reqs, port, waitMs) : playConn(conn, reqs, port, waitMs)
    if (scenario.concurrent === true) clients.push(...await Promise.all(planned.map(one)))
    else for (const p of planned) clients.push(await one(p))
  } finally {
    // no pooled upstream connection outlives the run: the next run starts from a clean pool (twice: a
    // request a stalled run left queued may be forwarded once the connection before it ends)
    await idle()
    await upstream.closeAll()
    await idle()
    await upstream.closeAll()
  }
  return { clients, upstream: upstream.received.slice(from), upstreamErrors: upstream.errors.slice(errorsFrom) }
}

async function playConn (conn: ConnSpec, reqs: Played[], port: number, waitMs: number): Promise<ClientRun> {
  const c = await H1Client.connect(port)
  const run: ClientRun = { version: conn.version, pipelined: conn.pipelined, reqs, raw: '', closed: false, stalled: undefined, streams: [] }
  const methods = reqs.map((r) => r.spec.method)
  const finals = (): number => takeAnswers(c.buffer, methods, c.closed).answers.length
  const wait = async (pred: () => boolean, what: string): Promise<boolean> => {
    if (await c.waitFor(() => pred() || c.closed, waitMs)) return !c.closed || pred()
    run.stalled = what
    return false
  }
  try {
    if (conn.pipelined) {
      await c.write(reqs.map((r) => { const b = requestBytes(r.spec, r.id, conn.version); return b.head + b.body }).join('')).catch(() => {})
      await wait(() => finals() >= reqs.length, `${reqs.length} answers to pipelined requests`)
    } else {
      for (let i = 0; i < reqs.length; i++) {
        const r = reqs[i]!
        const b = requestBytes(r.spec, r.id, conn.version)
        if (r.spec.expect && conn.version === '1.1' && b.body !== '') {
          // RFC 9110 §10.1.1: the body after a 100 Continue (or a final answer)
          const before = c.buffer.length
          await c.write(b.head).catch(() => {})
          if (!await wait(() => c.buffer.length > before, `100 Continue or an answer to request ${r.id}`)) break
          await c.write(b.body).catch(() => {})
        } else await c.write(b.head + b.body).catch(() => {})
        if (r.spec.abort !== 'none') {
          r.aborted = true
          c.abort(r.spec.abort)
          await c.waitFor(() => c.closed, waitMs)
          break
        }
        if (!await wait(() => finals() > i, `the answer to request ${r.id}`)) break
      }
    }
  } finally {
    run.raw = c.buffer
    run.closed = c.closed
    c.destroy()
  }
  return run
}

/** An HTTP/2 session: its streams all at once (`pipelined`) or each after the one before ended. */
async function playH2 (conn: ConnSpec, reqs: Played[], port: number, waitMs: number): Promise<ClientRun> {
  const session = await h2Connect(port)
  const run: ClientRun = { version: conn.version, pipelined: conn.pipelined, reqs, raw: '', closed: false, stalled: undefined, streams: [] }
  const one = (r: Played): Promise<H2Stream> => {
    const q = h2Request(r.spec, r.id)
    r.aborted = r.spec.abort !== 'none'
    return h2Exchange(session, q.pseudo, q.fields, q.body, q.trailers, waitMs, r.aborted)
  }
  try {
    if (conn.pipelined) run.streams = await Promise.all(reqs.map(one))
    else for (const r of reqs) run.streams.push(await one(r))
  } finally {
    session.destroy()
  }
  return run
}
