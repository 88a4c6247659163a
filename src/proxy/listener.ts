/**
 * @module proxy/listener
 * The public node:http listener: client-side limits and timeouts, malformed requests answered with
 * problem+json before anything reaches an upstream, Expect: 100-continue, upgrades.
 */
import http, { ServerResponse, type IncomingMessage, type Server } from 'node:http'
import type { Socket } from 'node:net'
import { kClosing, ProxyError, rawProblem, sendProblem, type ClosingSocket } from '../errors.js'
import type { ProxyCore } from './proxy.js'
import type { WebSocketTunnel } from './websocket.js'

export interface ListenerOptions {
  maxHeaderBytes: number
  headersTimeoutMs: number
  requestTimeoutMs: number
  idleTimeoutMs: number
}

export function createListener (core: ProxyCore, ws: WebSocketTunnel, o: ListenerOptions): Server {
  // Node requires headersTimeout <= requestTimeout
  const headersTimeout = Math.min(o.headersTimeoutMs, o.requestTimeoutMs)
  const server = http.createServer({
    maxHeaderSize: o.maxHeaderBytes,
    headersTimeout,
    requestTimeout: o.requestTimeoutMs,
    // Both timeouts are enforced only when this check runs (Node's default: every 30 s), so a
    // slowloris client outlived headersMs by up to 30 s. Check often enough to cut it near the limit.
    connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(headersTimeout / 4))),
    keepAliveTimeout: Math.min(o.idleTimeoutMs, 65_000),
    // duplicate headers stay separate in rawHeaders: the proxy forwards them as they came
    joinDuplicateHeaders: false,
    // checked in ProxyCore.handle, so the answer is problem+json like every other refusal
    requireHostHeader: false,
  }, (req, res) => core.handle(req, res))
  server.timeout = o.idleTimeoutMs
  // Node keeps only the first 2000 raw header entries by default and drops the rest without a word,
  // so a request with many small headers lost its Content-Length (and its body) or Authorization on
  // the way upstream. maxHeaderBytes is the only limit.
  server.maxHeadersCount = 0

  // With a listener here Node does not send "100 Continue" by itself: refuse a too-large body first.
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    const declared = Number(req.headers['content-length'] ?? -1)
    if (declared > core.maxBodyBytes) {
      res.shouldKeepAlive = false
      sendProblem(res, new ProxyError('CLAYLB_BODY_TOO_LARGE', `body of ${declared} bytes exceeds the limit of ${core.maxBodyBytes}`))
      return
    }
    res.writeContinue()
    core.handle(req, res)
  })

  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    const answer = (): void => {
      if (socket.writable && !socket.destroyed && (err.code !== 'ECONNRESET')) {
        const code = err.code === 'HPE_HEADER_OVERFLOW' ? 'CLAYLB_HEADERS_TOO_LARGE'
          : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 'CLAYLB_REQUEST_TIMEOUT' : 'CLAYLB_BAD_REQUEST'
        const detail = code === 'CLAYLB_HEADERS_TOO_LARGE' ? `request headers exceed ${o.maxHeaderBytes} bytes`
          : code === 'CLAYLB_REQUEST_TIMEOUT' ? 'request not received in time'
            : `malformed request: ${(err as { reason?: string }).reason ?? err.message}`
        socket.end(rawProblem(code, detail))
      }
      socket.destroy()
    }
    ;(socket as ClosingSocket)[kClosing] = true
    // A response may already be on this connection (Node's own handler checks the same field).
    const pending = (socket as { _httpMessage?: ServerResponse | null })._httpMessage
    if (pending == null || (!pending.headersSent && !pending.req.complete)) return answer()
    if (!pending.req.complete) {
      // the broken body belongs to a request that already has its answer: no second one
      if (pending.writableEnded) socket.end()
      else socket.destroy()
      return
    }
    // the error is in a request pipelined behind answers still being sent: answer it in its turn
    afterResponses(socket, answer)
  })

  // claylb is a reverse proxy, not a forward one; Node would drop the connection without a word
  server.on('connect', (_req: IncomingMessage, socket: Socket) => {
    socket.on('error', () => socket.destroy())
    socket.end(rawProblem('CLAYLB_NOT_IMPLEMENTED', 'CONNECT is not supported: claylb is a reverse proxy'))
  })

  // an Expect other than 100-continue (Node would answer a bare 417 itself)
  server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
    sendProblem(res, new ProxyError('CLAYLB_EXPECTATION_FAILED', `unsupported expectation: ${req.headers.expect}`))
  })

  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    // pipelined behind an answer that closes the connection (read on while it lingers): never run
    if ((socket as ClosingSocket)[kClosing] === true) {
      socket.destroy()
      return
    }
    if (isWebSocketUpgrade(req)) ws.handle(req, socket, head)
    else answerWithoutUpgrade(core, req, socket, head)
  })
  return server
}

/** Run `fn` once every response queued on the connection has been written (or the connection is gone). */
function afterResponses (socket: Socket, fn: () => void): void {
  const current = (socket as { _httpMessage?: ServerResponse | null })._httpMessage
  if (current == null || socket.destroyed) return fn()
  const next = (): void => { current.off('finish', next).off('close', next); setImmediate(afterResponses, socket, fn) }
  current.on('finish', next).on('close', next)
}

function isWebSocketUpgrade (req: IncomingMessage): boolean {
  return req.method === 'GET' && req.headers.upgrade?.toLowerCase() === 'websocket'
}

/**
 * Node hands every request carrying `Connection: upgrade` over as a raw socket, and the WebSocket
 * tunnel dropped the ones it does not speak (`Upgrade: h2c`, as `curl --http2` sends) without a word.
 * An upgrade is only an offer (RFC 9110 §7.8): answer the plain HTTP/1.1 request it also is, then close,
 * since the parser has let go of the connection. A body cannot be read any more: 501.
 */
function answerWithoutUpgrade (core: ProxyCore, req: IncomingMessage, socket: Socket, head: Buffer): void {
  socket.on('error', () => socket.destroy())
  if (head.length > 0 || req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0) {
    socket.end(rawProblem('CLAYLB_NOT_IMPLEMENTED', `upgrade to ${req.headers.upgrade} is not supported`))
    return
  }
  const res = new ServerResponse(req)
  res.shouldKeepAlive = false
  res.assignSocket(socket)
  res.on('finish', () => { res.detachSocket(socket); socket.end() })
  core.handle(req, res)
}
