/**
 * @module idempotency/fingerprint
 * What makes two requests "the same" for one key: method, request target and body. A JSON body is
 * compared by value (RFC 8785 canonical form: key order and whitespace do not matter); any other body,
 * and JSON that does not parse, byte for byte. Bytes are hashed as they arrive; a JSON body is parsed
 * once, on the one copy the caller keeps anyway.
 */
import { createHash, type Hash } from 'node:crypto'
import canonicalize from 'canonicalize'

export function isJsonContentType (contentType: string | undefined): boolean {
  if (contentType === undefined) return false
  const semi = contentType.indexOf(';')
  const mime = (semi < 0 ? contentType : contentType.slice(0, semi)).trim().toLowerCase()
  return mime === 'application/json' || mime.endsWith('+json')
}

function head (method: string, target: string): Hash {
  return createHash('sha256').update(`${method} ${target}\n`)
}

/** The canonical JSON text of a parsed value, or undefined when it has none (cycles, lone surrogates). */
function canonicalJson (value: unknown): string | undefined {
  try {
    return canonicalize(value)
  } catch {
    return undefined
  }
}

/**
 * Fingerprint of a body that streams in: `update` per chunk, then `digest` with the whole body when
 * the content type is JSON (ignored otherwise; pass nothing).
 */
export class BodyFingerprint {
  private readonly hash: Hash
  private readonly json: boolean
  private bytes = 0

  constructor (method: string, target: string, contentType: string | undefined) {
    this.json = isJsonContentType(contentType)
    this.hash = head(method, target)
    if (!this.json) this.hash.update('bytes\n')
  }

  /** true when `digest` needs the whole body (the caller keeps its chunks anyway) */
  get needsBody (): boolean { return this.json }

  update (chunk: Buffer): void {
    this.bytes += chunk.length
    if (!this.json) this.hash.update(chunk)
  }

  digest (body?: Buffer): string {
    if (this.json && this.bytes > 0 && body !== undefined) {
      let text: string | undefined
      try {
        text = canonicalJson(JSON.parse(body.toString('utf8')))
      } catch { /* not JSON after all: compared by bytes below */ }
      if (text !== undefined) return this.hash.update('json\n').update(text).digest('hex')
      return this.hash.update('bytes\n').update(body).digest('hex')
    }
    if (this.json) this.hash.update('bytes\n')
    return this.hash.digest('hex')
  }
}

/**
 * Fingerprint of a body a framework already parsed (Express `req.body`, Fastify `request.body`):
 * Buffers and strings by bytes, anything else (objects, arrays, numbers) by canonical JSON.
 */
export function fingerprintValue (method: string, target: string, body: unknown): string {
  const h = head(method, target)
  if (body === undefined || body === null) return h.update('bytes\n').digest('hex')
  if (Buffer.isBuffer(body)) return h.update('bytes\n').update(body).digest('hex')
  if (typeof body === 'string') return h.update('bytes\n').update(body, 'utf8').digest('hex')
  const text = canonicalJson(body)
  if (text === undefined) return h.update('bytes\n').update(String(body)).digest('hex')
  return h.update('json\n').update(text).digest('hex')
}
