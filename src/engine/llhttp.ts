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

/** The callbacks an engine parser is given (Node 20–24 argument order). */
export interface ParserCallbacks {
  /** the first byte of a message (bound only when given: the client side times heads with it) */
  onMessageBegin?: () => void
  /** 32+ headers arrive in pieces before headers-complete (llhttp's kOnHeaders) */
  onHeaders (headers: string[], url: string): void
  onHeadersComplete (versionMajor: number, versionMinor: number, headers: string[], method: number | undefined,
    url: string | undefined, statusCode: number | undefined, statusMessage: string | undefined, upgrade: boolean,
    shouldKeepAlive: boolean): number
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
    throw new EngineUnavailable(`engine "raw" needs node:_http_common, which Node ${process.version} does not have: use engine "node"`, { cause: err })
  }
  if (typeof mod.HTTPParser !== 'function' || !Array.isArray(mod.methods)) {
    throw new EngineUnavailable(`Node ${process.version} has no HTTPParser in node:_http_common: use engine "node"`)
  }
  loaded = { HTTPParser: mod.HTTPParser, methods: mod.methods }
  return loaded
}

/** llhttp's method numbers → names (index = the `method` argument of onHeadersComplete) */
export function methodNames (): readonly string[] {
  return load().methods
}

const RESOURCE = {}

/**
 * A parser wired to `cb`. `lenientVersion`: accept any `HTTP/d.d` (the engine checks the major itself,
 * so `HTTP/1.2` is served as 1.1 the way RFC 9110 §2.5 asks, and `HTTP/2.0` gets a 505).
 */
export function createParser (kind: 'request' | 'response', maxHeaderSize: number, cb: ParserCallbacks): Parser {
  const { HTTPParser } = load()
  const p = new HTTPParser()
  p.initialize(kind === 'request' ? HTTPParser.REQUEST : HTTPParser.RESPONSE, RESOURCE, maxHeaderSize, kind === 'request' ? HTTPParser.kLenientVersion : 0)
  if (cb.onMessageBegin !== undefined) p[HTTPParser.kOnMessageBegin] = cb.onMessageBegin.bind(cb)
  p[HTTPParser.kOnHeaders] = cb.onHeaders.bind(cb)
  p[HTTPParser.kOnHeadersComplete] = cb.onHeadersComplete.bind(cb)
  p[HTTPParser.kOnBody] = cb.onBody.bind(cb)
  p[HTTPParser.kOnMessageComplete] = cb.onMessageComplete.bind(cb)
  p[HTTPParser.kOnExecute] = cb.onExecute.bind(cb)
  return p
}

/** Re-arm a parser after a parse error or an upgrade: a fresh message of the same kind. */
export function reinitialize (p: Parser, kind: 'request' | 'response', maxHeaderSize: number): void {
  const { HTTPParser } = load()
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
 * The start-up check: parse one request and one response (with a body, 40 headers so the kOnHeaders
 * path runs, a 1xx, and an `HTTP/1.2` line) and compare with what the engine expects. Throws
 * EngineUnavailable on any difference, so a Node whose parser changed fails before it listens.
 */
export function selfTest (): void {
  const seen: string[] = []
  const cb: ParserCallbacks = {
    onHeaders (h, url) { seen.push(`h${h.length}${url}`) },
    onHeadersComplete (maj, min, h, method, url, status, msg, upgrade, keep) {
      seen.push(`hc ${maj}.${min} ${h?.length ?? '-'} ${method === undefined || method === null ? '' : methodNames()[method]} ${url ?? ''} ${status ?? ''} ${msg ?? ''} ${upgrade} ${keep}`)
      return 0
    },
    onBody (b) { seen.push(`b ${b.toString('latin1')}`) },
    onMessageComplete () { seen.push('mc') },
    onExecute () {},
  }
  let got = ''
  try {
    let extra = ''
    for (let i = 0; i < 40; i++) extra += `x-h${i}: ${i}\r\n`
    const req = createParser('request', 16384, cb)
    const r1 = req.execute(Buffer.from(`POST /a?b HTTP/1.2\r\nHost: h\r\n${extra}Content-Length: 2\r\n\r\nok`, 'latin1'))
    const res = createParser('response', 16384, cb)
    const r2 = res.execute(Buffer.from('HTTP/1.1 103 Early Hints\r\nLink: </s>\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n', 'latin1'))
    req.close()
    res.close()
    if (typeof r1 !== 'number' || typeof r2 !== 'number') throw new Error(`parse failed: ${String(r1)} ${String(r2)}`)
    got = seen.join('|')
  } catch (err) {
    throw new EngineUnavailable(`Node ${process.version}'s HTTPParser does not behave as engine "raw" expects (${(err as Error).message}): use engine "node"`, { cause: err })
  }
  const want = 'h62/a?b|h22|hc 1.2 - POST  ' + '  false true|b ok|mc|hc 1.1 2   103 Early Hints false true|mc|hc 1.1 2   200 OK false true|b hi|mc'
  if (got !== want) throw new EngineUnavailable(`Node ${process.version}'s HTTPParser does not behave as engine "raw" expects: got ${got}, want ${want}: use engine "node"`)
}
