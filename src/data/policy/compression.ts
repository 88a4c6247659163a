/**
 * @module data/policy/compression
 * `compression: { algorithms, types, minBytes }`, compiled once per route: which answers are
 * compressed and with what. An answer is left as it came when it is to HEAD, a 204, 206 or 304, a
 * Range request, already encoded (content-encoding), marked `cache-control: no-transform`, not of a
 * listed type, an event stream (compression would hold its events back), or shorter than minBytes
 * by its content-length. Otherwise it is compressible: `vary: accept-encoding` is added whether or
 * not this client takes an encoding (a cache must not give the identity copy to one that does), and
 * the algorithm is negotiated from accept-encoding with q-values (RFC 9110 §12.5.3).
 */
export type Algorithm = 'br' | 'gzip'

/** config's `compression` (schema.ts gives the defaults) */
export interface CompressionSettings {
  readonly enabled: boolean
  readonly algorithms: readonly Algorithm[]
  readonly types: readonly string[]
  readonly minBytes: number
  readonly gzipLevel: number
  readonly brotliQuality: number
}

/** the answer's head facts a decision reads (from the upstream's raw [name, value, …] list) */
interface AnswerFacts {
  type: string
  encoded: boolean
  noTransform: boolean
  length: number
}

export class Compression {
  readonly algorithms: readonly Algorithm[]
  private readonly exact: ReadonlySet<string>
  /** `text/` of `text/*` */
  private readonly prefixes: readonly string[]
  readonly minBytes: number
  readonly gzipLevel: number
  readonly brotliQuality: number

  constructor (c: CompressionSettings) {
    this.algorithms = [...new Set(c.algorithms)]
    const types = c.types.map((t) => t.toLowerCase())
    this.exact = new Set(types.filter((t) => !t.endsWith('/*')))
    this.prefixes = types.filter((t) => t.endsWith('/*')).map((t) => t.slice(0, -1))
    this.minBytes = c.minBytes
    this.gzipLevel = c.gzipLevel
    this.brotliQuality = c.brotliQuality
  }

  /**
   * 'none': sent as it came; '': compressible, but the client takes none of the algorithms (sent as
   * it came, with vary); else the algorithm.
   */
  decide (method: string, status: number, request: readonly string[], answer: readonly string[]): Algorithm | '' | 'none' {
    if (method === 'HEAD' || status === 204 || status === 206 || status === 304) return 'none'
    const f = facts(answer)
    if (f.encoded || f.noTransform || (f.length >= 0 && f.length < this.minBytes) || !this.takes(f.type)) return 'none'
    let accept: string | undefined
    for (let i = 0; i < request.length; i += 2) {
      const n = request[i]!.toLowerCase()
      if (n === 'range') return 'none'
      if (n === 'accept-encoding') accept = accept === undefined ? request[i + 1]! : `${accept},${request[i + 1]!}`
    }
    return accept === undefined ? '' : negotiate(accept, this.algorithms)
  }

  private takes (type: string): boolean {
    if (type === '' || type === 'text/event-stream') return false
    if (this.exact.has(type)) return true
    for (const p of this.prefixes) if (type.startsWith(p)) return true
    return false
  }
}

function facts (raw: readonly string[]): AnswerFacts {
  const f: AnswerFacts = { type: '', encoded: false, noTransform: false, length: -1 }
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i]!.toLowerCase()
    const v = raw[i + 1]!
    if (n === 'content-type') {
      const semi = v.indexOf(';')
      f.type = (semi < 0 ? v : v.slice(0, semi)).trim().toLowerCase()
    } else if (n === 'content-encoding') {
      // `identity` is no encoding (RFC 9110 §8.4.1 lists it as a token; some servers send it)
      if (v.trim().toLowerCase() !== 'identity') f.encoded = true
    } else if (n === 'cache-control') {
      if (/(?:^|,)\s*no-transform\s*(?:,|$)/i.test(v)) f.noTransform = true
    } else if (n === 'content-length') f.length = Number(v)
  }
  return f
}

/**
 * The algorithm with the highest q the client gives (its own token's, else `*`'s), ties broken by the
 * server's order; '' when none has q > 0. `x-gzip` is gzip (RFC 9110 §8.4.1.3).
 */
export function negotiate (accept: string, algorithms: readonly Algorithm[]): Algorithm | '' {
  const q = new Map<string, number>()
  for (const part of accept.split(',')) {
    const [token, ...params] = part.split(';')
    let name = token!.trim().toLowerCase()
    if (name === '') continue
    if (name === 'x-gzip') name = 'gzip'
    let value = 1
    for (const p of params) {
      const m = /^\s*q\s*=\s*([0-9.]+)\s*$/i.exec(p)
      if (m !== null) value = Number(m[1])
    }
    if (!Number.isFinite(value) || value < 0 || value > 1) continue
    // the same token twice: the first counts (a client would not send both)
    if (!q.has(name)) q.set(name, value)
  }
  const any = q.get('*')
  let best: Algorithm | '' = ''
  let bestQ = 0
  for (const a of algorithms) {
    const v = q.get(a) ?? any ?? 0
    if (v > bestQ) {
      best = a
      bestQ = v
    }
  }
  return best
}

/**
 * The head lines of a compressed answer (`lines`: the filtered ones, each ending in CRLF):
 * content-length dropped (the length changes), a strong ETag made weak (the bytes are not the
 * upstream's), content-encoding set and vary merged. `algorithm` '': only vary (sent as it came).
 */
export function compressedLines (lines: string, algorithm: Algorithm | ''): string {
  let out = ''
  let vary = ''
  let at = 0
  while (at < lines.length) {
    const end = lines.indexOf('\r\n', at)
    const line = lines.slice(at, end)
    at = end + 2
    const colon = line.indexOf(':')
    const name = line.slice(0, colon).toLowerCase()
    if (name === 'vary') {
      vary = vary === '' ? line.slice(colon + 1).trim() : `${vary}, ${line.slice(colon + 1).trim()}`
      continue
    }
    if (algorithm !== '') {
      // content-encoding: identity (the only one an answer compressed here can carry) is replaced
      if (name === 'content-length' || name === 'content-encoding') continue
      if (name === 'etag') {
        const v = line.slice(colon + 1).trim()
        out += v.startsWith('W/') ? `${line}\r\n` : `etag: W/${v}\r\n`
        continue
      }
    }
    out += `${line}\r\n`
  }
  const listed = vary.split(',').map((s) => s.trim().toLowerCase())
  if (vary === '') vary = 'accept-encoding'
  else if (!listed.includes('*') && !listed.includes('accept-encoding')) vary += ', accept-encoding'
  out += `vary: ${vary}\r\n`
  if (algorithm !== '') out += `content-encoding: ${algorithm}\r\n`
  return out
}
