/**
 * @module idempotency/canonical-worker
 * The worker thread that canonicalises large JSON bodies (canonical-offload.ts), so the proxy's event
 * loop never stops for one: `{ id, body }` in, `{ id, result }` out.
 */
import { parentPort } from 'node:worker_threads'
import { canonicalDigest } from './canonical-digest.js'

parentPort?.on('message', (m: { id: number, body: Uint8Array }) => {
  parentPort!.postMessage({ id: m.id, result: canonicalDigest(m.body) })
})
