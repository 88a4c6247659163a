/**
 * @module proxy/websocket
 * WebSocket (and any HTTP/1.1 Upgrade) tunnelled to the next upstream, with http-proxy's ws support.
 * http-proxy leaves socket errors unhandled in places (research: crashes on ECONNRESET), so every
 * socket gets an error handler here and every failure ends in a closed client socket, never a throw.
 */
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import httpProxy from 'http-proxy'
import type { Balancer } from '../balancer/balancer.js'
import { rawProblem } from '../errors.js'
import type { Logger } from '../log.js'

export class WebSocketTunnel {
  private readonly proxy = httpProxy.createProxyServer({ ws: true, xfwd: true })
  private readonly sockets = new Set<Duplex>()

  constructor (private readonly balancer: Balancer, private readonly logger: Logger, connectTimeoutMs: number) {
    this.proxy.on('error', (err, _req, target) => {
      this.logger.warn({ err: err.message }, 'websocket tunnel failed')
      const socket = target as Duplex | undefined
      if (socket && !socket.destroyed) {
        if ('writable' in socket && socket.writable) {
          socket.end(rawProblem('CLAYLB_UPSTREAM_FAILED', 'websocket upstream failed'))
        }
        socket.destroy()
      }
    })
    this.proxy.on('open', (proxySocket: Duplex) => { proxySocket.on('error', () => proxySocket.destroy()) })
    this.proxy.on('proxyReqWs', (proxyReq) => {
      proxyReq.setTimeout(connectTimeoutMs, () => proxyReq.destroy(new Error('websocket upstream connect timeout')))
    })
  }

  handle (req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy())
    const host = this.balancer.pick()
    if (host === undefined) {
      socket.end(rawProblem('CLAYLB_NO_HEALTHY_UPSTREAM', 'no healthy upstream is available'))
      return
    }
    this.sockets.add(socket)
    socket.once('close', () => this.sockets.delete(socket))
    host.requests++
    this.proxy.ws(req, socket, head, { target: host.origin })
  }

  close (): void {
    for (const s of this.sockets) s.destroy()
    this.proxy.close()
  }
}
