/**
 * @module idempotency/fingerprint
 * What makes two requests "the same" for one key: method, the normalised request target and body. A
 * JSON body is compared by exact value (canonical-json.ts: member order, whitespace and number
 * spelling do not matter, precision is never lost); any other body, and JSON that does not parse, byte
 * for byte. A JSON body with a member name given twice is refused (400 `invalid-json`): which of the
 * two the upstream uses is up to its parser. Bytes are hashed as they arrive; a JSON body is read once,
 * on the one copy the caller keeps anyway.
 */
import { isUtf8 } from 'node:buffer'
import { createHash, type Hash } from 'node:crypto'
import { ProxyError } from '../errors.js'
import { canonicalJson, JsonDuplicateMemberError } from './canonical-json.js'

export function isJsonContentType (contentType: string | undefined): boolean {
  if (contentType === undefined) return false
  const semi = contentType.indexOf(';')
  const mime = (semi < 0 ? contentType : contentType.slice(0, semi)).trim().toLowerCase()
  return mime === 'application/json' || mime.endsWith('+json')
}

function head (method: string, target: string): Hash {
  return createHash('sha256').update(`${method} ${target}\n`)
}

/**
 * The canonical text of a JSON body, or undefined when it is not JSON (compared by bytes then).
 * Throws the 400 `invalid-json` for a member name given twice.
 */
function canonicalBody (body: Buffer): string | undefined {
  // invalid UTF-8 would decode to U+FFFD: two different bodies, one text
  if (!isUtf8(body)) return undefined
  try {
    return canonicalJson(body.toString('utf8'))
  } catch (err) {
    if (err instanceof JsonDuplicateMemberError) throw new ProxyError('CLAYLB_INVALID_JSON', `the JSON body has a ${err.message}; send each member once`)
    return undefined
  }
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
      const text = canonicalBody(body)
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
  const text = canonicalValue(body)
  if (text === undefined) return h.update('bytes\n').update(String(body)).digest('hex')
  return h.update('json\n').update(text).digest('hex')
}
