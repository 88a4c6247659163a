/**
 * @module shared/node-internals
 * Every undocumented Node (or body-parser) member claylb touches, in one place. Each is feature-tested
 * once at load (does it exist, with the type we use?) and each use falls back to public API when it
 * is absent, so a Node release that renames one costs a slower or blunter path, never a crash.
 * (The engine's `socket._handle` / parser `consume()` live in data/http/llhttp.ts, which has its own
 * start-up check and its 'data'-event fallback.)
 */
import { IncomingMessage } from 'node:http'
import { Socket } from 'node:net'

/** the load-time feature tests: what this Node has */
export const NODE_INTERNALS = Object.freeze({
  /** IncomingMessage#_dump: drop a request's unread body without buffering it */
  dump: typeof (IncomingMessage.prototype as unknown as { _dump?: unknown })._dump === 'function',
  /** Socket#destroySoon: end, then destroy once the writes are flushed */
  destroySoon: typeof (Socket.prototype as unknown as { destroySoon?: unknown }).destroySoon === 'function',
})

/** Drop the rest of a request body nobody will read (the socket keeps flowing). */
export function dumpBody (req: IncomingMessage | undefined, has = NODE_INTERNALS.dump): void {
  if (req === undefined) return
  const dump = (req as unknown as { _dump?: unknown })._dump
  if (has && typeof dump === 'function') return void dump.call(req)
  // public API: no 'data' listener and a flowing stream discard what arrives
  req.removeAllListeners('data')
  req.resume()
}

/** Node's own close after the pending writes: `destroySoon`, else end() and destroy on 'finish'. */
export function destroySoon (socket: Socket, has = NODE_INTERNALS.destroySoon): void {
  const own = (Socket.prototype as unknown as { destroySoon?: unknown }).destroySoon
  if (has && typeof own === 'function') return void own.call(socket)
  if (socket.writable) {
    socket.end()
    socket.once('finish', () => socket.destroy())
  } else {
    socket.destroy()
  }
}

/**
 * The raw socket under a TLS socket (TLSSocket#_parent), else undefined: callers key on the TLS
 * socket too. Tested per call, not at load: a probe needs a TLSSocket, whose default secure context
 * costs every proxy process ~2.5 MB it may never use.
 */
export function tlsParent (socket: Socket, has = true): Socket | undefined {
  if (!has) return undefined
  const parent = (socket as unknown as { _parent?: unknown })._parent
  return parent instanceof Socket ? parent : undefined
}

type Channel = { _pendingMessage?: { handle?: { close?: unknown } } | null }

/**
 * A child process exited with a handle still queued in its IPC channel (child_process keeps the one in
 * flight in `_pendingMessage`): close it so the connection is not held open. Without that member
 * there is nothing reachable to close; the caller's own record of unsent sockets (destroyed there)
 * is the public fallback. Returns whether a queued handle was closed.
 */
export function closePendingHandle (child: object): boolean {
  const channel = child as Channel
  const pending = channel._pendingMessage
  if (pending === null || typeof pending !== 'object') return false
  const close = pending.handle?.close
  if (typeof close === 'function') close.call(pending.handle)
  channel._pendingMessage = null
  return typeof close === 'function'
}

/**
 * Whether a body parser already read this request's body into `req.body`: body-parser's `_body`
 * flag, else (a parser without it) the public sign that the stream was read to its end.
 */
export function bodyAlreadyParsed (req: { _body?: unknown, readableEnded: boolean }): boolean {
  return req._body === true || req.readableEnded
}
