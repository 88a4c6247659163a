/**
 * @module shared/linger
 * A lingering close (nginx's `lingering_close`). When claylb answers before the request's body has
 * all arrived (a 502 from an upstream that reset mid-upload, a 504, a 413) it must close the
 * connection; closing at once leaves the client's bytes still in flight to meet a closed socket, the
 * kernel answers them with a RST, and the client sees EPIPE or ECONNRESET instead of the answer it
 * was sent. So: the answer, then a FIN, then whatever still comes is read and dropped until the
 * client ends its side or LINGER_MS pass, then the socket is destroyed.
 */
import type { IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import { destroySoon, dumpBody } from './node-internals.js'

/** the longest a closing connection keeps reading the rest of a request body */
export const LINGER_MS = 2000

const kLinger = Symbol('claylb.linger')
type LingerSocket = Socket & { [kLinger]?: boolean }

/**
 * Make the close that follows the current answer on `socket` a lingering one. Node's server closes a
 * connection after a `connection: close` answer with `socket.destroySoon()`; this socket's own
 * replaces it. `req` is the request whose body is still arriving: its bytes are dropped unread.
 */
export function lingerOnClose (socket: Socket, req: IncomingMessage | undefined, ms = LINGER_MS): void {
  const s = socket as LingerSocket
  if (s[kLinger] === true || socket.destroyed) return
  s[kLinger] = true
  socket.destroySoon = function lingeringClose (this: Socket) {
    // the client sent all it had already: nothing can meet a closed socket, so Node's own close
    if (this.readableEnded) return destroySoon(this)
    if (this.writable) this.end()
    const close = (): void => {
      clearTimeout(timer)
      this.destroy()
    }
    const timer = setTimeout(close, ms).unref()
    this.once('end', close)
    this.once('close', () => clearTimeout(timer))
    // the parser pushes the body's rest into the request (a push into a request nobody reads pauses
    // the socket): drop it instead, keep reading
    dumpBody(req)
    this.resume()
  }
}
