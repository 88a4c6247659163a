/**
 * @module idempotency/body
 * Reading a keyed request's body: once, bounded, fingerprinted while it arrives. The claim needs the
 * fingerprint before anything is forwarded, so this is the one copy of the body that exists.
 */
import type { IncomingMessage } from 'node:http'
import { ProxyError } from '../errors.js'
import type { BodyFingerprint } from './fingerprint.js'

/** Read the whole body once, feeding the fingerprint as it arrives; bounded by `limits.maxBodyBytes`. */
export function readBody (req: IncomingMessage, max: number, fp: BodyFingerprint): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const onData = (chunk: Buffer): void => {
      size += chunk.length
      if (size > max) {
        cleanup()
        req.resume() // drain the rest, so the 413 can be read
        reject(new ProxyError('CLAYLB_BODY_TOO_LARGE', `body exceeds the limit of ${max} bytes`))
        return
      }
      fp.update(chunk)
      chunks.push(chunk)
    }
    const onEnd = (): void => { cleanup(); resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)) }
    const onClose = (): void => { if (!req.complete) { cleanup(); reject(new Error('client closed')) } }
    const cleanup = (): void => {
      req.off('data', onData)
      req.off('end', onEnd)
      req.off('close', onClose)
      req.off('error', onClose)
    }
    req.on('data', onData)
    req.on('end', onEnd)
    req.on('close', onClose)
    req.on('error', onClose)
  })
}
