/**
 * The adversarial suite's set-up: a real backend that records every request and body, behind a
 * wiretap that records the exact bytes it received, behind the real built claylb CLI.
 */
import { readdirSync, readFileSync } from 'node:fs'
import type { Test } from 'tap'
import { recordBody, startBackend, startWiretap, type Backend, type Handler, type Wiretap } from '../helpers/backend.js'
import { startClaylb, type Claylb } from '../helpers/claylb.js'

export interface Rig {
  lb: Claylb
  /** the proxy's port */
  port: number
  backend: Backend
  tap: Wiretap
}

export async function startRig (t: Test, o: { handler?: Handler, config?: Record<string, unknown> } = {}): Promise<Rig> {
  const backend = await startBackend(o.handler ?? recordBody)
  const tap = await startWiretap(backend.port)
  const lb = await startClaylb({ args: ['--upstream', tap.url], config: { log: { access: true }, ...o.config } })
  t.teardown(async () => { await lb.stop('SIGKILL'); await tap.close(); await backend.close() })
  return { lb, port: Number(new URL(lb.url).port), backend, tap }
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

/** Access-log lines the proxy wrote for proxied requests. */
export function accessLines (lb: Claylb): Array<Record<string, unknown>> {
  return lb.logs.filter((l) => l['msg'] === 'request')
}
