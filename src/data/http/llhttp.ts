/**
 * @module engine/llhttp
 * The one place claylb touches Node's internal HTTP parser (`node:_http_common`'s `HTTPParser`, the
 * llhttp binding `node:http` itself uses). It is not a public API: its callbacks and `initialize()`
 * have changed between Node majors. So it is pinned here, checked once at start-up against the
 * behaviour the engine relies on, and a Node without it fails loud (`EngineUnavailable`) instead of
 * misparsing. Why llhttp and not a parser of our own: it is what Node trusts, strict on framing
 * (CL+TE, duplicate CL, bare CR/LF, obs-fold), and it runs in C++ (see bench/README.md).
 */
import { createRequire } from 'node:module'
import type { Socket } from 'node:net'

const require = createRequire(import.meta.url)

/**
 * The callbacks an engine parser is given (Node 20–24 argument order). They see whole messages only:
 * llhttp's kOnHeaders (a head flushed in pieces, and the trailer section of a chunked message) is
 * taken by the parser's own MessageFrame, never by the engine, so no caller holds header state
 * that could outlive its message.
 */
export interface ParserCallbacks {
  /** the first byte of a message (the client side times heads with it) */
  onMessageBegin?: () => void
  /** the head, whole: `headers` is llhttp's raw [name, value, …] list, `url` the target ('' on a response) */
  onHeadersComplete (versionMajor: number, versionMinor: number, headers: string[], method: number | undefined,
    url: string, statusCode: number | undefined, statusMessage: string | undefined, upgrade: boolean,
    shouldKeepAlive: boolean): number
  /**
   * the trailer section of a chunked message (RFC 9112 §7.1.2), just before onMessageComplete; not
   * given: trailers are dropped (what claylb does on both sides, as nginx's proxy does)
   */
  onTrailers?: (trailers: string[]) => void
  onBody (chunk: Buffer): void
  onMessageComplete (): void
  /** after each read the parser consumed from the socket itself; `ret` is bytes parsed or the parse error */
  onExecute (ret: number | ParseError): void
}

export interface ParseError extends Error {
  code: string
  reason?: string
  bytesParsed: number
  rawPacket?: Buffer
}

export interface Parser {
  initialize (type: number, resource: object, maxHeaderSize: number, lenient: number): void
  execute (data: Buffer): number | ParseError
  finish (): number | ParseError | undefined
  consume (handle: unknown): void
  unconsume (): void
  getCurrentBuffer (): Buffer
  pause (): void
  resume (): void
  close (): void
  free (): void
  remove (): void
  [k: number]: unknown
}

interface ParserClass {
  new (): Parser
  REQUEST: number
  RESPONSE: number
  kOnMessageBegin: number
  kOnHeaders: number
  kOnHeadersComplete: number
  kOnBody: number
  kOnMessageComplete: number
  kOnExecute: number
  kLenientVersion: number
}

export class EngineUnavailable extends Error {
  override name = 'EngineUnavailable'
  readonly code = 'CLAYLB_ENGINE_UNAVAILABLE'
}

let loaded: { HTTPParser: ParserClass, methods: readonly string[] } | null = null

function load (): { HTTPParser: ParserClass, methods: readonly string[] } {
  if (loaded !== null) return loaded
  let mod: { HTTPParser?: ParserClass, methods?: readonly string[] }
  try {
    mod = require('node:_http_common') as typeof mod
  } catch (err) {
    throw new EngineUnavailable(`claylb's engine needs node:_http_common, which Node ${process.version} does not have`, { cause: err })
  }
  if (typeof mod.HTTPParser !== 'function' || !Array.isArray(mod.methods)) {
    throw new EngineUnavailable(`Node ${process.version} has no HTTPParser in node:_http_common`)
  }
  loaded = { HTTPParser: mod.HTTPParser, methods: mod.methods }
  return loaded
}

/** llhttp's method numbers → names (index = the `method` argument of onHeadersComplete) */
export function methodNames (): readonly string[] {
  return load().methods
}

let known: ReadonlySet<string> | null = null

/**
 * `post`, `Post`: a method llhttp knows, spelled in another case. Methods are case-sensitive tokens
 * (RFC 9110 §9.1), so it is not that method, but a framework that upper-cases it runs it as one.
 */
export function misspelledMethod (method: string): boolean {
  known ??= new Set(load().methods)
  return !known.has(method) && known.has(method.toUpperCase())
}

const RESOURCE = {}

/** what onHeadersComplete returns to llhttp: the answer has no body (a HEAD request, a 1xx) */
export const NO_BODY = 1
/**
 * ... or the message is unusable: llhttp stops with a parse error (HPE_CB_HEADERS_COMPLETE), the
 * caller's onExecute sees it and destroys the connection, so nothing after this head is read as a message
 */
export const BROKEN = -1

/**
 * The head and trailers of the ONE message a parser is in. llhttp hands a head over whole in
 * kOnHeadersComplete, except when it flushed it in pieces (32+ fields, or any head once that parser
 * flushed before: Node's `have_flushed_` is never reset), and hands a chunked message's trailers
 * over by the same kOnHeaders after the body. Node's own parserOnMessageComplete tells the two
 * apart; so does this: pieces before the head completes are the head, pieces after it are trailers,
 * and every piece is dropped when a message begins or completes. So trailers never become headers
 * and nothing of one message reaches the next (a trailer `Host:` becoming the next request's, a
 * trailer `Set-Cookie:` the next client's).
 */
class MessageFrame {
  /** fields llhttp flushed for this message so far (its head, then its trailers); null: none */
  private pieces: string[] | null = null
  private url = ''
  /** the head completed: what kOnHeaders delivers now are trailers */
  inBody = false

  constructor (public cb: ParserCallbacks) {}

  clear (): void {
    this.pieces = null
    this.url = ''
    this.inBody = false
  }

  begin (): void {
    this.clear()
    this.cb.onMessageBegin?.()
  }

  headers (fields: string[], url: string): void {
    if (this.pieces === null) this.pieces = fields
    else for (let i = 0; i < fields.length; i++) this.pieces.push(fields[i]!)
    // a trailer flush repeats the target llhttp still holds: only a head's pieces carry it
    if (!this.inBody) this.url += url
  }

  headersComplete (major: number, minor: number, headers: string[] | null | undefined, method: number | undefined,
    url: string | undefined, statusCode: number | undefined, statusMessage: string | undefined, upgrade: boolean, keepAlive: boolean): number {
    let h = headers
    let u = url
    if (this.pieces !== null) {
      // the slow path: the head came in pieces (llhttp passes no headers, no url then)
      if (h == null) h = this.pieces
      else h = this.pieces.concat(h)
      if (u === undefined) u = this.url
    }
    this.pieces = null
    this.url = ''
    this.inBody = true
    return this.cb.onHeadersComplete(major, minor, h ?? [], method, u ?? '', statusCode, statusMessage, upgrade, keepAlive)
  }

  messageComplete (): void {
    const trailers = this.inBody ? this.pieces : null
    this.clear()
    if (trailers !== null && this.cb.onTrailers !== undefined) this.cb.onTrailers(trailers)
    this.cb.onMessageComplete()
  }
}

/** a parser's frame, stored on the parser itself: its callbacks find it through `this`, no closure */
const FRAME = Symbol('claylb.frame')
type Framed = Parser & { [FRAME]: MessageFrame }

// llhttp calls these with `this` = the parser (as node:http's parserOn* functions): one function each
// for every parser, none bound per connection
function onBegin (this: Framed): void { this[FRAME].begin() }
function onHeaders (this: Framed, fields: string[], url: string): void { this[FRAME].headers(fields, url) }
function onHeadersComplete (this: Framed, major: number, minor: number, headers: string[] | null | undefined, method: number | undefined,
  url: string | undefined, statusCode: number | undefined, statusMessage: string | undefined, upgrade: boolean, keepAlive: boolean): number {
  return this[FRAME].headersComplete(major, minor, headers, method, url, statusCode, statusMessage, upgrade, keepAlive)
}
function onMessageComplete (this: Framed): void { this[FRAME].messageComplete() }
function onBody (this: Framed, chunk: Buffer): void { this[FRAME].cb.onBody(chunk) }
function onExecute (this: Framed, ret: number | ParseError): void { this[FRAME].cb.onExecute(ret) }

/**
 * Parsers a closed connection gave back, re-initialised for the next one instead of making a C++
 * parser per connection (node:http keeps a FreeList of 1000 likewise).
 */
const POOL_MAX = 1000
const pool: Framed[] = []

/**
 * llhttp stopped with `err` in the trailer section of a chunked message, whose body is all in: a
 * `Content-Length` there is refused (HPE_INVALID_CONTENT_LENGTH, as beside Transfer-Encoding in a
 * head), where RFC 9110 §6.5.1 has a recipient ignore a framing field (nginx skips trailer lines).
 * Length errors come only from parsing fields, and after the head only trailers are fields. The
 * caller ends the message as complete (`p` reads nothing more: the connection closes after it).
 */
export function refusedTrailer (p: Parser, err: ParseError): boolean {
  const f = (p as Framed)[FRAME]
  if (err.code !== 'HPE_INVALID_CONTENT_LENGTH' || f === undefined || !f.inBody) return false
  f.clear() // that message is over: a later error of the same parser is an error
  return true
}

/**
 * A parser wired to `cb` through its own MessageFrame. `lenientVersion`: accept any `HTTP/d.d` (the
 * engine checks the major itself, so `HTTP/1.2` is served as 1.1 the way RFC 9110 §2.5 asks, and
 * `HTTP/2.0` gets a 505).
 */
export function createParser (kind: 'request' | 'response', maxHeaderSize: number, cb: ParserCallbacks): Parser {
  const { HTTPParser } = load()
  let p = pool.pop()
  if (p === undefined) {
    p = new HTTPParser() as Framed
    p[FRAME] = new MessageFrame(cb)
    p[HTTPParser.kOnMessageBegin] = onBegin
    p[HTTPParser.kOnHeaders] = onHeaders
    p[HTTPParser.kOnHeadersComplete] = onHeadersComplete
    p[HTTPParser.kOnMessageComplete] = onMessageComplete
    p[HTTPParser.kOnBody] = onBody
    p[HTTPParser.kOnExecute] = onExecute
  } else {
    p[FRAME].cb = cb
    p[FRAME].clear()
  }
  p.initialize(kind === 'request' ? HTTPParser.REQUEST : HTTPParser.RESPONSE, RESOURCE, maxHeaderSize, kind === 'request' ? HTTPParser.kLenientVersion : 0)
  return p
}

/**
 * Done with `p` (its socket closed, unconsumed first): kept for the next connection, or closed when
 * the pool is full. Not from inside one of its own callbacks: its C++ stack must have unwound.
 */
export function releaseParser (p: Parser): void {
  const f = p as Framed
  if (pool.length >= POOL_MAX) {
    p.close()
    return
  }
  f[FRAME].clear()
  f[FRAME].cb = IDLE
  p.free()
  pool.push(f)
}

/** a pooled parser's callbacks: nothing of the connection it served is kept alive by it */
const IDLE: ParserCallbacks = {
  onHeadersComplete: () => BROKEN,
  onBody: () => {},
  onMessageComplete: () => {},
  onExecute: () => {},
}

/** Re-arm a parser after a parse error or an upgrade: a fresh message of the same kind. */
export function reinitialize (p: Parser, kind: 'request' | 'response', maxHeaderSize: number): void {
  const { HTTPParser } = load()
  ;(p as Framed)[FRAME].clear()
  p.initialize(kind === 'request' ? HTTPParser.REQUEST : HTTPParser.RESPONSE, RESOURCE, maxHeaderSize, kind === 'request' ? HTTPParser.kLenientVersion : 0)
}

/** CLAYLB_ENGINE_NO_CONSUME=1: run on the 'data'-event fallback (tests; a Node whose consume() misbehaves) */
const forceDataEvents = process.env['CLAYLB_ENGINE_NO_CONSUME'] === '1'

type HandleSocket = Socket & { _handle?: { isStreamBase?: boolean, readStop?: () => number, readStart?: () => number } | null }

/**
 * Let the parser read the socket in C++ (what `node:http` does; no JS 'data' event per read).
 * False when this socket's handle cannot be consumed: the caller feeds `execute()` from 'data'.
 */
export function consumeSocket (p: Parser, socket: Socket): boolean {
  if (forceDataEvents) return false
  const h = (socket as HandleSocket)._handle
  if (h == null || h.isStreamBase !== true) return false
  p.consume(h)
  return true
}

/** Stop / restart reading a consumed socket (backpressure, pipelining). */
export function readStop (socket: Socket): void {
  const h = (socket as HandleSocket)._handle
  if (h != null && typeof h.readStop === 'function') h.readStop()
}
export function readStart (socket: Socket): void {
  const h = (socket as HandleSocket)._handle
  if (h != null && typeof h.readStart === 'function' && !socket.destroyed) h.readStart()
}


/**
 * The start-up check: parse requests and responses (with bodies, 40 headers so llhttp flushes the head
 * in pieces, chunked trailers followed by another message, a 1xx, and an `HTTP/1.2` line) and compare
 * what the callbacks get with what the engine expects. Throws EngineUnavailable on any difference, so
 * a Node whose parser changed fails before it listens.
 */
export function selfTest (): void {
  const seen: string[] = []
  const cb: ParserCallbacks = {
    onHeadersComplete (maj, min, h, method, url, status, msg, upgrade, keep) {
      seen.push(`hc ${maj}.${min} ${h.length} ${method === undefined || method === null ? '' : methodNames()[method]} ${url} ${status ?? ''} ${msg ?? ''} ${upgrade} ${keep}`)
      return 0
    },
    onTrailers (h) { seen.push(`t ${h.join(',')}`) },
    onBody (b) { seen.push(`b ${b.toString('latin1')}`) },
    onMessageComplete () { seen.push('mc') },
    onExecute () {},
  }
  let got = ''
  try {
    let extra = ''
    for (let i = 0; i < 40; i++) extra += `x-h${i}: ${i}\r\n`
    const req = createParser('request', 16384, cb)
    const r1 = req.execute(Buffer.from(`POST /a?b HTTP/1.2\r\nHost: h\r\n${extra}Content-Length: 2\r\n\r\nok` +
      'POST /t HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nX-T: v\r\n\r\nGET /f HTTP/1.1\r\nHost: h\r\n\r\n', 'latin1'))
    const res = createParser('response', 16384, cb)
    const r2 = res.execute(Buffer.from('HTTP/1.1 103 Early Hints\r\nLink: </s>\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nX-R: 1\r\n\r\n' +
      'HTTP/1.1 204 No Content\r\nX-N: 2\r\n\r\n', 'latin1'))
    req.close()
    res.close()
    if (typeof r1 !== 'number' || typeof r2 !== 'number') throw new Error(`parse failed: ${String(r1)} ${String(r2)}`)
    got = seen.join('|')
  } catch (err) {
    throw new EngineUnavailable(`Node ${process.version}'s HTTPParser does not behave as claylb's engine expects (${(err as Error).message})`, { cause: err })
  }
  const want = 'hc 1.2 84 POST /a?b   false true|b ok|mc|hc 1.1 4 POST /t   false true|b hi|t X-T,v|mc|hc 1.1 2 GET /f   false true|mc|' +
    'hc 1.1 2   103 Early Hints false true|mc|hc 1.1 2   200 OK false true|b hi|t X-R,1|mc|hc 1.1 2   204 No Content false true|mc'
  if (got !== want) throw new EngineUnavailable(`Node ${process.version}'s HTTPParser does not behave as claylb's engine expects: got ${got}, want ${want}`)
}
