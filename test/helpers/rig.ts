/**
 * The adversarial suite's set-up: a real backend that records every request and body, behind a
 * wiretap that records the exact bytes it received, behind the real built claylb CLI.
 */
import { readdirSync, readFileSync } from 'node:fs'
import type { Test } from 'tap'
import { RawClient, problemOf } from './raw.js'
import { recordBody, startBackend, startWiretap, type Backend, type Handler, type Wiretap } from './backend.js'
import { startClaylb, type Claylb } from './claylb.js'
import { listenConfig } from './transport.js'

export interface Rig {
  lb: Claylb
  /** the proxy's port */
  port: number
  backend: Backend
  tap: Wiretap
  /** a point to measure from, so tests can share one rig */
  mark (): Mark
  /** what the upstream saw, and what the proxy logged, since the mark */
  since (m: Mark): { count: number, seen: Backend['seen'], wire: string, access: Array<Record<string, unknown>> }
}

export interface Mark { count: number, seen: number, wire: number, logs: number }

export async function startRig (t: Test, o: { handler?: Handler, config?: Record<string, unknown> } = {}): Promise<Rig> {
  // the backend records faithfully: no header size or count limit of its own
  const backend = await startBackend(o.handler ?? recordBody, { maxHeaderSize: 1 << 20 })
  backend.server.maxHeadersCount = 0
  const tap = await startWiretap(backend.port)
  const lb = await startClaylb({ args: ['--upstream', tap.url], config: { log: { access: true }, healthCheck: { enabled: false }, ...listenConfig(), ...o.config } }) // the wiretap must see only proxied bytes
  t.teardown(async () => { await lb.stop('SIGKILL'); await tap.close(); await backend.close() })
  return {
    lb,
    port: Number(new URL(lb.url).port),
    backend,
    tap,
    mark: () => ({ count: backend.count, seen: backend.seen.length, wire: tap.text().length, logs: lb.logs.length }),
    since: (m) => ({
      count: backend.count - m.count,
      seen: backend.seen.slice(m.seen),
      wire: tap.text().slice(m.wire),
      access: lb.logs.slice(m.logs).filter((l) => l['msg'] === 'request'),
    }),
  }
}

/** Open file descriptors of a process (Linux /proc). */
export function fdCount (pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length
}

/** Resident set size of a process in bytes (Linux /proc). */
export function rssBytes (pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Number(m[1]) * 1024 : 0
}

/** The admin /status upstream in-flight counters, summed. */
export async function upstreamInflight (lb: Claylb): Promise<number> {
  const r = await fetch(`${lb.admin}/status`)
  const s = await r.json() as { upstreams: Array<{ inflight: number }> }
  return s.upstreams.reduce((n, u) => n + u.inflight, 0)
}

/** Poll `probe` until `pred` holds or timeoutMs passes; returns the last value seen. */
export async function settle<T> (probe: () => T | Promise<T>, pred: (v: T) => boolean, timeoutMs: number, everyMs = 100): Promise<T> {
  const until = Date.now() + timeoutMs
  for (;;) {
    const v = await probe()
    if (pred(v) || Date.now() > until) return v
    await new Promise((resolve) => setTimeout(resolve, everyMs))
  }
}

/**
 * Send `bytes` (with a valid request pipelined behind them) and assert the refusal: one problem+json
 * answer with `status`, the connection closed, no second answer, and upstream either nothing at all
 * ('head') or no complete request ('body': the head was valid, so streaming may have begun).
 */
export async function assertRefused (t: Test, rig: Rig, name: string, bytes: string, status: number | number[], where: 'head' | 'body' = 'head'): Promise<void> {
  const m = rig.mark()
  const c = await RawClient.connect(rig.port)
  try {
    // if the proxy resynchronised on the request behind the bad one, it would run
    await c.write(bytes + 'GET /after HTTP/1.1\r\nHost: x\r\n\r\n').catch(() => {})
    const r = await c.readResponse(5000)
    const allowed = ([] as number[]).concat(status)
    t.ok(allowed.includes(r?.status ?? 0), `${name}: ${allowed.join(' or ')} (got ${r?.status})`)
    if (r !== undefined) t.equal(problemOf(r).status, r.status, `${name}: problem+json with the same status`)
    t.ok(await c.waitClosed(5000), `${name}: the connection is closed after the refusal`)
    t.equal((await c.readResponse(10))?.status, undefined, `${name}: no second answer (the request behind it is never read)`)
  } finally {
    c.destroy()
  }
  const after = rig.since(m)
  if (where === 'head') {
    t.equal(after.count, 0, `${name}: the upstream saw no request`)
    t.equal(after.wire, '', `${name}: not one byte reached the upstream`)
  } else {
    t.same(after.seen.filter((s) => s.body !== undefined), [], `${name}: the upstream saw no complete request`)
  }
  t.notOk(after.seen.some((s) => s.url === '/after'), `${name}: the request pipelined behind it never reached the upstream`)
}
