/**
 * A strict HTTP/1.1 message parser for the differential fuzzer, on latin1 strings (one character per
 * byte). It is deliberately stricter than llhttp's lenient modes: CRLF only, token header names, one
 * framing (RFC 9112 §6.3), so a proxy that desynchronises a connection (a body written raw, a head
 * that leaked into the next message) shows up as a parse error or as a message that is not the one
 * sent, instead of being tidied away.
 */

export type Fields = Array<[string, string]>

export interface Message {
  /** request: method, target, version; response: version, status, reason */
  method: string
  target: string
  version: string
  status: number
  reason: string
  headers: Fields
  body: string
  trailers: Fields
  framing: 'length' | 'chunked' | 'close' | 'none'
}

export class WireError extends Error {
  override name = 'WireError'
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
const REQUEST_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) (\S+) (HTTP\/1\.[01])$/
const STATUS_LINE = /^(HTTP\/1\.[01]) (\d{3}) ([^\r\n]*)$/

/** Every header named `name` (case-insensitive), in order. */
export function fieldValues (fields: Fields, name: string): string[] {
  const lower = name.toLowerCase()
  return fields.filter(([n]) => n.toLowerCase() === lower).map(([, v]) => v)
}

function parseFields (lines: string[], at: number): Fields {
  const out: Fields = []
  for (const line of lines) {
    const colon = line.indexOf(':')
    const name = colon < 0 ? '' : line.slice(0, colon)
    if (!TOKEN.test(name)) throw new WireError(`bad header line ${JSON.stringify(line)} near byte ${at}`)
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '')
    if (/[\0\r\n]/.test(value)) throw new WireError(`control character in header ${name} near byte ${at}`)
    out.push([name, value])
  }
  return out
}

/** The head at the start of `buf`: its start line and fields, and where the body starts; undefined while incomplete. */
export function takeHead (buf: string): { start: string, fields: Fields, end: number } | undefined {
  const end = buf.indexOf('\r\n\r\n')
  if (end < 0) {
    if (/[^\r]\n|^\n/.test(buf)) throw new WireError(`bare LF in a head: ${JSON.stringify(buf.slice(0, 80))}`)
    return undefined
  }
  const text = buf.slice(0, end)
  if (/\r(?!\n)|(?<!\r)\n/.test(text)) throw new WireError(`bare CR or LF in a head: ${JSON.stringify(text.slice(0, 200))}`)
  const [start, ...lines] = text.split('\r\n')
  return { start: start!, fields: parseFields(lines, 0), end: end + 4 }
}

/** The body framing of a message (RFC 9112 §6.3); `noBody`: a response to HEAD, a 1xx, 204 or 304. */
function framingOf (fields: Fields, noBody: boolean, request: boolean): { kind: Message['framing'], length: number } {
  if (noBody) return { kind: 'none', length: 0 }
  const te = fieldValues(fields, 'transfer-encoding')
  const cl = fieldValues(fields, 'content-length')
  if (te.length > 0) {
    if (cl.length > 0) throw new WireError('both Transfer-Encoding and Content-Length')
    if (te.length !== 1 || te[0]!.toLowerCase() !== 'chunked') throw new WireError(`transfer-encoding ${JSON.stringify(te)}`)
    return { kind: 'chunked', length: 0 }
  }
  if (cl.length > 1) throw new WireError(`${cl.length} Content-Length headers`)
  if (cl.length === 1) {
    if (!/^\d{1,15}$/.test(cl[0]!)) throw new WireError(`content-length ${JSON.stringify(cl[0])}`)
    return { kind: 'length', length: Number(cl[0]) }
  }
  return request ? { kind: 'none', length: 0 } : { kind: 'close', length: 0 }
}

/** A chunked body at `at`: its data, trailers and where it ends; undefined while incomplete. */
function takeChunked (buf: string, at: number): { body: string, trailers: Fields, end: number } | undefined {
  let body = ''
  for (;;) {
    const eol = buf.indexOf('\r\n', at)
    if (eol < 0) return undefined
    const m = /^([0-9A-Fa-f]{1,8})(?:;[^\r\n]*)?$/.exec(buf.slice(at, eol))
    if (m === null) throw new WireError(`bad chunk size line ${JSON.stringify(buf.slice(at, Math.min(eol, at + 40)))} at byte ${at}`)
    const size = parseInt(m[1]!, 16)
    if (size === 0) {
      // trailer section: fields until an empty line
      if (buf.startsWith('\r\n', eol + 2)) return { body, trailers: [], end: eol + 4 }
      const tEnd = buf.indexOf('\r\n\r\n', eol + 2)
      if (tEnd < 0) return undefined
      return { body, trailers: parseFields(buf.slice(eol + 2, tEnd).split('\r\n'), eol), end: tEnd + 4 }
    }
    if (buf.length < eol + 2 + size + 2) return undefined
    if (buf.slice(eol + 2 + size, eol + 4 + size) !== '\r\n') throw new WireError(`chunk of ${size} not followed by CRLF at byte ${eol + 2 + size}`)
    body += buf.slice(eol + 2, eol + 2 + size)
    at = eol + 4 + size
  }
}

/**
 * The first whole message of `buf`. `kind` request or response; `headRequest`: the response answers
 * a HEAD; `closed`: the peer closed, so a close-delimited body ends at the end of `buf`.
 * Undefined while incomplete; throws WireError on anything malformed.
 */
export function takeMessage (buf: string, kind: 'request' | 'response', o: { headRequest?: boolean, closed?: boolean } = {}): { msg: Message, rest: string } | undefined {
  const head = takeHead(buf)
  if (head === undefined) return undefined
  const msg: Message = { method: '', target: '', version: '', status: 0, reason: '', headers: head.fields, body: '', trailers: [], framing: 'none' }
  if (kind === 'request') {
    const m = REQUEST_LINE.exec(head.start)
    if (m === null) throw new WireError(`bad request line ${JSON.stringify(head.start.slice(0, 200))}`)
    msg.method = m[1]!
    msg.target = m[2]!
    msg.version = m[3]!
  } else {
    const m = STATUS_LINE.exec(head.start)
    if (m === null) throw new WireError(`bad status line ${JSON.stringify(head.start.slice(0, 200))}`)
    msg.version = m[1]!
    msg.status = Number(m[2])
    msg.reason = m[3]!
  }
  const noBody = kind === 'response' && (o.headRequest === true || msg.status < 200 || msg.status === 204 || msg.status === 304)
  const f = framingOf(msg.headers, noBody, kind === 'request')
  msg.framing = f.kind
  switch (f.kind) {
    case 'none':
      return { msg, rest: buf.slice(head.end) }
    case 'length':
      if (buf.length < head.end + f.length) return undefined
      msg.body = buf.slice(head.end, head.end + f.length)
      return { msg, rest: buf.slice(head.end + f.length) }
    case 'chunked': {
      const c = takeChunked(buf, head.end)
      if (c === undefined) return undefined
      msg.body = c.body
      msg.trailers = c.trailers
      return { msg, rest: buf.slice(c.end) }
    }
    case 'close':
      if (o.closed !== true) return undefined
      msg.body = buf.slice(head.end)
      return { msg, rest: '' }
  }
}

/** Serialise fields as header lines, each ending in CRLF. */
export function fieldLines (fields: Fields): string {
  let s = ''
  for (const [n, v] of fields) s += `${n}: ${v}\r\n`
  return s
}

/** `data` as chunks of at most `size` bytes, then the last chunk with `trailers`. */
export function chunked (data: string, size: number, trailers: Fields): string {
  let s = ''
  for (let i = 0; i < data.length; i += size) {
    const part = data.slice(i, i + size)
    s += `${part.length.toString(16)}\r\n${part}\r\n`
  }
  return `${s}0\r\n${fieldLines(trailers)}\r\n`
}

/** A final answer and the interim answers before it. */
export interface Answer {
  interim: Message[]
  final: Message
}

/**
 * Every whole answer in what a client received, in order: `methods[i]` is the method of request i
 * (a HEAD's answer has no body). `error`: the bytes stopped making sense there (a desync); `rest`:
 * bytes after the last whole answer.
 */
export function takeAnswers (raw: string, methods: readonly string[], closed: boolean): { answers: Answer[], rest: string, error: string | undefined } {
  const answers: Answer[] = []
  let interim: Message[] = []
  let rest = raw
  try {
    for (;;) {
      const i = answers.length
      const taken = takeMessage(rest, 'response', { headRequest: methods[i] === 'HEAD', closed })
      if (taken === undefined) break
      rest = taken.rest
      if (taken.msg.status >= 100 && taken.msg.status < 200) {
        interim.push(taken.msg)
        continue
      }
      answers.push({ interim, final: taken.msg })
      interim = []
      if (rest === '') break
    }
  } catch (err) {
    if (!(err instanceof WireError)) throw err
    return { answers, rest, error: `${err.message} (after ${answers.length} answers, at byte ${raw.length - rest.length})` }
  }
  return { answers, rest, error: undefined }
}
