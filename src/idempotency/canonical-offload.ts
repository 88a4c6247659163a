/**
 * @module idempotency/canonical-offload
 * Canonicalising JSON is linear but not free (about 30-70 ms per MiB of small members on one core):
 * done on the event loop, an 8 MiB keyed body stopped every other request of the process for
 * hundreds of ms. Bodies up to INLINE_MAX_BYTES are done inline (well under a millisecond or two);
 * larger ones go to one worker thread per process, started on first use, so the event loop only pays
 * for copying the bytes over (about 1 ms per 8 MiB).
 */
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

/** The canonical digest of a JSON body: inline when small, else on the worker thread. */
export function canonicalDigestOf (body: Buffer): CanonicalResult | Promise<CanonicalResult> {
  if (body.length <= INLINE_MAX_BYTES) return canonicalDigest(body)
  const w = worker ??= start()
  const id = nextId++
  // a copy: the caller still forwards these bytes; the copy's memory moves to the worker
  const copy = new Uint8Array(body)
  return new Promise((resolve, reject) => {
    if (pending.size === 0) w.ref()
    pending.set(id, { resolve, reject })
    w.postMessage({ id, body: copy }, [copy.buffer])
  })
}
