/**
 * @module idempotency/fingerprint
 * What makes two requests under one key "the same": the method, the request target as sent (only
 * escapes of unreserved characters decoded: route-path.ts's fingerprintTarget), the content type
 * (normalised: content-type.ts) and the body. A JSON body is compared by exact value
 * (canonical-json.ts: member order, whitespace and number spelling do not matter, precision is never
 * lost); any other body, and JSON that does not parse, byte for byte. A JSON body with a member name
 * given twice is refused (400 `invalid-json`): which of the two the upstream uses is up to its parser.
 * Bytes are hashed as they arrive; a JSON body is read once, on the one copy the caller keeps anyway,
 * and a large one on a worker thread (canonical-offload.ts).
 */
import { createHash, type Hash } from 'node:crypto'
import { ProxyError } from '../errors.js'
import { canonicalJson } from './canonical-json.js'
import type { CanonicalResult } from './canonical-digest.js'
import { canonicalDigestOf } from './canonical-offload.js'
import { isJsonMediaType, normaliseContentType } from './content-type.js'

/** the parts before the body, unambiguously framed (a target or a content type cannot fake another part) */
function head (method: string, target: string, contentType: string): Hash {
  return createHash('sha256').update(JSON.stringify([method, target, contentType])).update('\n')
}

function invalidJson (message: string): ProxyError {
  return new ProxyError('CLAYLB_INVALID_JSON', `the JSON body has a ${message}; send each member once`)
}

/** The canonical text of a value a framework parsed, or undefined when it has none (cycles, BigInt). */
function canonicalValue (value: unknown): string | undefined {
  try {
    const text = JSON.stringify(value)
    return text === undefined ? undefined : canonicalJson(text)
  } catch {
    return undefined
  }
}

/**
 * Fingerprint of a body that streams in: `update` per chunk, then `digest` with the whole body when
 * the content type is JSON (ignored otherwise; pass nothing). `digest` is a promise only for a JSON
 * body too large to canonicalise on the event loop.
 */
export class BodyFingerprint {
  private readonly hash: Hash
  private readonly json: boolean
  private bytes = 0

  /** `target` from fingerprintTarget; `contentType` as sent (undefined: none) */
  constructor (method: string, target: string, contentType: string | undefined) {
    const ct = normaliseContentType(contentType)
    this.json = isJsonMediaType(ct)
    this.hash = head(method, target, ct)
    if (!this.json) this.hash.update('bytes\n')
  }

  /** true when `digest` needs the whole body (the caller keeps its chunks anyway) */
  get needsBody (): boolean { return this.json }

  update (chunk: Buffer): void {
    this.bytes += chunk.length
    if (!this.json) this.hash.update(chunk)
  }

  digest (body?: Buffer): string | Promise<string> {
    if (this.json && this.bytes > 0 && body !== undefined) {
      const r = canonicalDigestOf(body)
      return r instanceof Promise ? r.then((x) => this.finish(x, body)) : this.finish(r, body)
    }
    if (this.json) this.hash.update('bytes\n')
    return this.hash.digest('hex')
  }

  private finish (r: CanonicalResult, body: Buffer): string {
    if (r.kind === 'duplicate') throw invalidJson(r.message)
    if (r.kind === 'json') return this.hash.update('json\n').update(r.digest).digest('hex')
    return this.hash.update('bytes\n').update(body).digest('hex')
  }
}

/**
 * Fingerprint of a body a framework already parsed (Express `req.body`, Fastify `request.body`):
 * Buffers and strings by bytes, anything else (objects, arrays, numbers) by canonical JSON.
 */
export function fingerprintValue (method: string, target: string, contentType: string | undefined, body: unknown): string {
  const h = head(method, target, normaliseContentType(contentType))
  if (body === undefined || body === null) return h.update('bytes\n').digest('hex')
  if (Buffer.isBuffer(body)) return h.update('bytes\n').update(body).digest('hex')
  if (typeof body === 'string') return h.update('bytes\n').update(body, 'utf8').digest('hex')
  const text = canonicalValue(body)
  if (text === undefined) return h.update('bytes\n').update(String(body)).digest('hex')
  return h.update('json\n').update(createHash('sha256').update(text).digest('hex')).digest('hex')
}
