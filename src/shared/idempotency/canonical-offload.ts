/**
 * @module idempotency/canonical-offload
 * Canonicalising JSON is not free (about 50-150 ms per MiB of small members on one core, objects
 * sorted by member name): done on the event loop, an 8 MiB keyed body stopped every other request of
 * the process for 350-600 ms. Bodies up to INLINE_MAX_BYTES are done inline (about 1.5 ms at most);
 * larger ones go to one worker thread per process, started on first use, so the event loop only pays
 * for copying the bytes over, a slice at a time.
 */
import { setImmediate as yieldTurn } from 'node:timers/promises'
import { Worker } from 'node:worker_threads'
import { canonicalDigest, type CanonicalResult } from './canonical-digest.js'

/** the largest body canonicalised on the event loop */
export const INLINE_MAX_BYTES = 32 * 1024

interface Pending { resolve (r: CanonicalResult): void, reject (err: Error): void }

let worker: Worker | null = null
let nextId = 0
const pending = new Map<number, Pending>()

function failAll (err: Error): void {
  worker = null
  for (const p of pending.values()) p.reject(err)
  pending.clear()
}

function start (): Worker {
  // from dist the worker is .js; the tests run src under a TypeScript loader that workers inherit
  const file = import.meta.url.endsWith('.ts') ? './canonical-worker.ts' : './canonical-worker.js'
  const w = new Worker(new URL(file, import.meta.url))
  w.on('message', (m: { id: number, result: CanonicalResult }) => {
    const p = pending.get(m.id)
    pending.delete(m.id)
    if (pending.size === 0) w.unref()
    p?.resolve(m.result)
  })
  w.on('error', (err) => failAll(err))
  w.on('exit', (code) => { if (worker === w) failAll(new Error(`the JSON canonicalisation worker exited (${code})`)) })
  // keeps the process alive only while a body is on it
  w.unref()
  return w
}

/** how much is copied per turn of the event loop (well under a millisecond on an idle core) */
const COPY_SLICE_BYTES = 256 * 1024

/**
 * A copy of `body` the worker can own (the caller still forwards these bytes), made a slice per turn
 * of the event loop: one 8 MiB copy at once took 10-40 ms on a loaded machine.
 */
async function copyInSlices (body: Buffer): Promise<ArrayBuffer> {
  const copy = new ArrayBuffer(body.length)
  const view = new Uint8Array(copy)
  for (let i = 0; i < body.length; i += COPY_SLICE_BYTES) {
    if (i > 0) await yieldTurn()
    view.set(body.subarray(i, i + COPY_SLICE_BYTES), i)
  }
  return copy
}

/** the canonical digest of a JSON body: inline when small, else on the worker thread */
export function canonicalDigestOf (body: Buffer): CanonicalResult | Promise<CanonicalResult> {
  if (body.length <= INLINE_MAX_BYTES) return canonicalDigest(body)
  return copyInSlices(body).then(offload)
}

function offload (copy: ArrayBuffer): Promise<CanonicalResult> {
  const w = worker ??= start()
  const id = nextId++
  return new Promise((resolve, reject) => {
    if (pending.size === 0) w.ref()
    pending.set(id, { resolve, reject })
    // transferred: the copy's memory moves to the worker
    w.postMessage({ id, body: new Uint8Array(copy) }, [copy])
  })
}
