/**
 * @module cores/handoff
 * Accept mode `handoff`, the default where Node has no `reusePort` (Node 20): the primary accepts
 * every connection and hands it, in turn, to the next proxy process that is serving, as an fd over
 * the IPC channel; the process serves it as if it had accepted it (Engine.adopt). Like node:cluster's
 * round-robin it spreads connections evenly (one shared listening handle lets whichever process
 * wakes first take most of them, and the one left with few pays a wake-up per request), and a
 * connection sent to a process that dies before it took it is closed, so its client sees the close.
 * node:cluster's round-robin leaves that client hanging forever, and so would a bare
 * `worker.send(msg, socket)`: Node passes one fd at a time per channel and keeps the rest queued
 * until the child acknowledges the one written; when the child dies, the disconnect that would close
 * the written one waits for that queue to empty, which never happens, and the queued ones are never
 * closed at all. So the acceptor keeps each socket until Node has written it to the channel (the
 * send callback), and when the process is gone (`processGone`) destroys the ones still queued and
 * closes the written, unacknowledged one (Node's own `_pendingMessage`, as its disconnect would).
 * The cost is the primary's, once per connection (accept and one sendmsg), never per request.
 */
import net, { type Server, type Socket } from 'node:net'
import type { Worker } from 'node:cluster'
import type { ToProxy } from '../../shared/process/protocol.js'
import { closePendingHandle } from '../../shared/node-internals.js'

const CONNECTION: ToProxy = { type: 'connection' }

export class HandoffAcceptor {
  private readonly server: Server
  private turn = 0
  /** per process, the connections sent but not yet written to its channel */
  private readonly unsent = new Map<Worker, Set<Socket>>()

  /** `serving()`: the processes that may take a connection now, in a stable order */
  constructor (private readonly serving: () => readonly Worker[]) {
    // paused: the primary never reads a byte; the process it goes to does
    this.server = net.createServer({ pauseOnConnect: true }, (socket) => this.handOff(socket))
  }

  listen (port: number, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(port, host, () => {
        this.server.off('error', reject)
        resolve((this.server.address() as net.AddressInfo).port)
      })
    })
  }

  private handOff (socket: Socket): void {
    const to = this.serving()
    if (to.length === 0) {
      // every process is down (being replaced): a closed connection the client can retry beats a hang
      socket.destroy()
      return
    }
    const worker = to[this.turn++ % to.length]!
    let waiting = this.unsent.get(worker)
    if (waiting === undefined) this.unsent.set(worker, waiting = new Set())
    waiting.add(socket)
    worker.send(CONNECTION, socket, { keepOpen: false }, (err: Error | null) => {
      waiting.delete(socket)
      if (err !== null) socket.destroy()
    })
  }

  /** `worker` exited: the connections still queued for it are closed, never left to hang */
  processGone (worker: Worker): void {
    const waiting = this.unsent.get(worker)
    this.unsent.delete(worker)
    if (waiting !== undefined) for (const s of waiting) s.destroy()
    closePendingHandle(worker.process)
  }

  /**
   * Stop accepting; connections already handed over are the processes' to drain. Not awaited: a
   * server whose sockets went to other processes calls back only once every one of them has closed
   * there (Node polls the processes), which the drain that follows is what brings about.
   */
  close (): void {
    this.server.close()
  }
}
