/**
 * @module engine/engine
 * The forwarding engine on raw `node:net` sockets (config `engine: raw`): the listener, the client
 * connections, each host's upstream pool, and ONE periodic sweep for every timeout of the path
 * (head not received in time, idle keep-alive, lingering closes, idle upstream sockets, an answer
 * whose body stopped arriving), plus two
 * intrusive deadline lists for the tries' connect and header timeouts. No timer per request.
 */
import net, { type AddressInfo, type Server, type Socket } from 'node:net'
import tls, { type TLSSocket } from 'node:tls'
import type { Logger } from '../../shared/log.js'
import type { ProxyError } from '../../shared/errors.js'
import type { CertificateSet, UpstreamTls } from '../../shared/tls/certificates.js'
import { H2Front } from './h2.js'
import type { Host } from '../upstream/host.js'
import type { Deadlines } from '../http/deadlines.js'
import type { ProxyCore } from './proxy.js'
import type { RoutePool } from '../routing/route-pool.js'
import type { RoutingState } from '../routing/routing-state.js'
import { ClientConn } from './client-conn.js'
import { readProxyHeader } from '../policy/proxy-protocol.js'
import type { Exchange } from './exchange.js'
import { responseHead, type HeadObserve } from '../http/head.js'
import { selfTest } from '../http/llhttp.js'
import { UpstreamPool, type PoolOptions, type UpstreamConn } from '../upstream/upstream-pool.js'

export interface EngineOptions {
  maxHeaderBytes: number
  /** limits.maxHeaders: request header fields */
  maxHeaders: number
  /** limits.underscoresInHeaders */
  underscoresInHeaders: 'drop' | 'forward'
  headersTimeoutMs: number
  idleTimeoutMs: number
  connectTimeoutMs: number
  /** timeouts.idleMs: an answer whose body stops arriving for this long is cut */
  bodyIdleMs: number
  /** timeouts.upstreamKeepAliveMs: an idle upstream connection is closed after this */
  upstreamKeepAliveMs: number
  /** timeouts.clientBodyMs: a request body with no byte for this long is answered 408 */
  clientBodyMs: number
  /** request ids and trace context (requestId, tracing); null when both are off */
  observe: HeadObserve | null
}

const TUNNEL_PENDING_LIMIT = 64 * 1024

/** What the engine is built with once (a reload swaps certificates, never the listener's kind). */
export interface EngineSetup {
  /** TLS to clients (listen.tls); `http2`: offer h2 by ALPN besides http/1.1 */
  tls?: { certificates: CertificateSet, http2: boolean, ticketKeys?: Buffer | undefined } | undefined
  /** listen.proxyProtocol: each connection starts with a PROXY header (before TLS) from a trusted peer */
  proxyProtocol?: boolean | undefined
  /** how https:// upstreams are connected (config `tls`) */
  upstreamTls?: UpstreamTls | undefined
  /** where problems that must not reach the client (upstream addresses, TLS errors) are told */
  logger?: Logger | undefined
}

export class Engine {
  readonly server: Server
  readonly core: ProxyCore
  /** replaced whole by a reload (new connections and heads read the new values) */
  o: EngineOptions
  readonly poolOptions: PoolOptions
  /**
   * routes, pools and trusted forwarders: ONE reference, replaced whole by a reload, read once per
   * request (when its head is parsed) and once per connection (trusted forwarders)
   */
  routing: RoutingState
  /** x-forwarded-proto */
  readonly proto: 'http' | 'https'
  /** the certificates served now (swapped whole by a reload) */
  private certificates: CertificateSet | null = null
  private readonly logger: Logger | undefined
  /** listen.proxyProtocol: a connection's client address is its PROXY header's (clientAddress()) */
  readonly proxyProtocol: boolean
  /** the TLS server (the listener itself, or, with the PROXY protocol, fed after the header was read) */
  private readonly tlsServer: tls.Server | null = null
  /** HTTP/2 streams (listen.http2), fed the TLS sockets that chose h2 */
  private readonly h2: H2Front | null = null
  /** a coarse clock (ms), advanced by the sweep: good enough for limits of seconds, free to read */
  clock = Date.now()
  /** every answer from now closes its connection (a drain began; the port may still accept) */
  draining = false
  /** the listener closed: a connection still handed over (accept mode handoff) is refused */
  private refusing = false
  private readonly conns = new Set<ClientConn>()
  private readonly pools = new Set<UpstreamPool>()
  private readonly tunnels = new Set<Socket>()
  private readonly sweepTimer: NodeJS.Timeout
  /** the sweep's period: how far `clock` may lag behind the time it stamps */
  private readonly sweepMs: number
  private readonly pendingTunnel = new Map<ClientConn, Buffer[]>()

  constructor (core: ProxyCore, o: EngineOptions, routing: RoutingState, setup: EngineSetup = {}) {
    selfTest()
    this.core = core
    this.o = o
    this.routing = routing
    this.logger = setup.logger
    this.poolOptions = { connectTimeoutMs: o.connectTimeoutMs, maxHeaderBytes: Math.max(o.maxHeaderBytes, 64 * 1024), tls: setup.upstreamTls }
    const t = setup.tls
    const pp = this.proxyProtocol = setup.proxyProtocol === true
    const trusted = (address: string): boolean => this.routing.trusted.trusts(address)
    if (t === undefined) {
      this.proto = 'http'
      this.server = net.createServer({ allowHalfOpen: true, noDelay: true }, pp
        ? (socket) => this.acceptProxied(socket, trusted, (s, rest) => this.accept(s, rest))
        : (socket) => this.accept(socket))
    } else {
      this.proto = 'https'
      const certificates = this.certificates = t.certificates
      if (t.http2) this.h2 = new H2Front(this)
      const tlsServer = this.tlsServer = tls.createServer({
        ...certificates.fallback,
        // read on every handshake, so a reload's new set serves the next connection
        SNICallback: (name, cb) => cb(null, this.certificates!.pick(name)),
        ALPNProtocols: t.http2 ? ['h2', 'http/1.1'] : ['http/1.1'],
        // session resumption (TLS 1.3 tickets, stateless): a returning client skips the certificate
        // signature and key exchange. Node makes random keys per server; proxy processes get the
        // primary's, so a ticket one issued resumes on any (nginx's master shares its keys likewise)
        ...(t.ticketKeys === undefined ? {} : { ticketKeys: t.ticketKeys }),
        // a handshake is part of the head: the same limit as a slow head
        handshakeTimeout: o.headersTimeoutMs,
        allowHalfOpen: true,
        noDelay: true,
      }, (socket) => this.accept(socket))
      // a failed handshake (a scanner, a wrong name, a timeout) is the client's affair: no log line per attempt
      tlsServer.on('tlsClientError', (_err, socket) => socket.destroy())
      // the PROXY header comes before the handshake: read on the plain listener, then the TLS server
      // takes the socket (with what followed the header put back)
      this.server = pp
        ? net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.acceptProxied(socket, trusted, (s, rest) => {
          if (rest !== undefined) s.unshift(rest)
          tlsServer.emit('connection', s)
        }))
        : tlsServer
    }
    const sweepMs = this.sweepMs = Math.max(100, Math.min(1000, Math.floor(Math.min(o.headersTimeoutMs, o.bodyIdleMs, o.clientBodyMs, o.upstreamKeepAliveMs) / 4)))
    this.sweepTimer = setInterval(() => this.sweep(), sweepMs)
    this.sweepTimer.unref()
  }

  /** a peer outside trustedProxies is closed unread; a trusted one's header is read first */
  private acceptProxied (socket: Socket, trusted: (address: string) => boolean, next: (socket: Socket, rest: Buffer | undefined) => void): void {
    if (this.refusing || socket.remoteAddress === undefined || !trusted(socket.remoteAddress)) {
      socket.destroy()
      return
    }
    readProxyHeader(socket, this.o.headersTimeoutMs, next)
  }

  /** `head`: bytes read past a PROXY header, the connection's first */
  private accept (socket: Socket, head?: Buffer): void {
    // a client gone before its connection was taken (a reset right behind the request, seen over TLS
    // when the handshake ends): its address is unreadable and there is nobody to answer; closed unread,
    // so nothing is forwarded with an empty x-forwarded-for (the differential fuzzer saw it)
    if (this.refusing || socket.remoteAddress === undefined) {
      socket.destroy()
      return
    }
    if (this.h2 !== null && (socket as TLSSocket).alpnProtocol === 'h2') {
      this.h2.accept(socket as TLSSocket)
      return
    }
    const c = new ClientConn(this, socket, this.clock)
    this.conns.add(c)
    if (this.proxyProtocol) c.afterProxyHeader(head)
  }

  /**
   * A connection another process accepted (the primary, accept mode `handoff`), served as if this
   * server had: the TLS server wraps it, the plain one hands it to accept(). The socket was made from
   * the received fd, so the options the server would have set are set here.
   */
  adopt (socket: Socket): void {
    socket.setNoDelay(true)
    socket.allowHalfOpen = true
    this.server.emit('connection', socket)
  }

  /**
   * Serve `next` from the next handshake on; connections already open keep theirs (a TLS session is
   * never re-keyed under a client). The default pair goes to the server, SNI pairs to the callback.
   * (A reload builds `next` with tls/certificates' loadCertificates, which names every bad file.)
   */
  useCertificates (next: CertificateSet): void {
    if (this.certificates === null) return
    this.certificates = next
    this.tlsServer!.setSecureContext(next.fallback)
  }

  get tls (): boolean {
    return this.certificates !== null
  }

  /** a problem whose detail is for the log only (see ProxyError.logDetail) */
  logProblem (ex: Exchange, err: ProxyError): void {
    this.logger?.warn({ method: ex.method, path: ex.path, status: err.status, code: err.code, upstream: ex.host?.id, attempts: ex.attempts }, err.logDetail ?? err.message)
  }

  listen (port: number, host: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(port, host, () => { this.server.off('error', reject); resolve() })
    })
  }

  address (): AddressInfo {
    return this.server.address() as AddressInfo
  }

  private sweep (): void {
    const now = this.clock = Date.now()
    // a stamp taken from the coarse clock may be up to one period old: a limit gets that much slack so
    // it is never cut early (a head timeout early by 250 ms was seen under load), only up to a period late
    const slack = this.sweepMs
    for (const c of this.conns) c.sweep(now, this.o.headersTimeoutMs + slack, this.o.idleTimeoutMs + slack, this.o.clientBodyMs + slack)
    // an idle connection may wait up to a period for the next sweep: closed a period early instead
    const keepAlive = Math.max(0, this.o.upstreamKeepAliveMs - this.sweepMs)
    for (const p of this.pools) {
      p.sweepIdle(now, keepAlive)
      p.sweepStreaming(now, this.o.bodyIdleMs)
      // a host a reload removed: its pool goes once its last connection did
      if (p.closed && p.all.size === 0) this.pools.delete(p)
    }
  }

  /** client connections open now */
  get connections (): number {
    return this.conns.size
  }

  forget (c: ClientConn): void {
    this.conns.delete(c)
    this.pendingTunnel.delete(c)
  }

  /** the host's connection pool, made on its first try; `tls`: its pool's upstream TLS, if its own */
  poolFor (host: Host, tls: UpstreamTls | undefined): UpstreamPool {
    let p = host.sockets
    if (p === null) {
      const o = tls === undefined || tls === this.poolOptions.tls ? this.poolOptions : { ...this.poolOptions, tls }
      p = host.sockets = new UpstreamPool(host.url, host.socketPath, o)
      this.pools.add(p)
    }
    return p
  }

  // ---- try timeouts (the lists of the request's pool) ----

  timeConnect (c: UpstreamConn, pool: RoutePool): void {
    this.timeIn(c, pool.connecting)
  }

  timeHeaders (c: UpstreamConn, pool: RoutePool): void {
    this.timeIn(c, pool.waiting)
  }

  private timeIn (c: UpstreamConn, list: Deadlines): void {
    c.timedBy?.remove(c)
    c.timedBy = list
    list.add(c, Date.now())
  }

  untime (c: UpstreamConn): void {
    c.timedBy?.remove(c)
    c.timedBy = null
  }

  // ---- WebSocket tunnels ----

  /** bytes a client sent after its upgrade request: held until the upstream agrees, else dropped */
  tunnelData (conn: ClientConn, d: Buffer): void {
    if (conn.closingSince !== 0 || conn.active === null || conn.active.upgradeTo === '') return
    let list = this.pendingTunnel.get(conn)
    if (list === undefined) this.pendingTunnel.set(conn, list = [])
    list.push(d)
    let n = 0
    for (const b of list) n += b.length
    if (n > TUNNEL_PENDING_LIMIT) conn.socket.destroy()
  }

  /** The upstream answered 101: send its head, then the two sockets are piped to each other. */
  tunnel (ex: Exchange, c: UpstreamConn, message: string, headers: string[]): number {
    let upgrade = ''
    for (let i = 0; i < headers.length; i += 2) if (headers[i]!.toLowerCase() === 'upgrade') upgrade = headers[i + 1]!
    responseHead(ex, headers, ex.route!.responseHeaders)
    // only an HTTP/1.1 connection offers an upgrade (HTTP/2 has none)
    const client = ex.conn as ClientConn
    client.detach()
    client.socket.write(`HTTP/1.1 101 ${message}\r\n${ex.respLines}connection: upgrade\r\nupgrade: ${upgrade}\r\n\r\n`, 'latin1')
    c.upgradeTo(client.socket, this.pendingTunnel.get(client) ?? [])
    this.pendingTunnel.delete(client)
    const a = client.socket
    const b = c.socket
    this.tunnels.add(a)
    a.once('close', () => { this.tunnels.delete(a); b.destroy() })
    b.once('close', () => a.destroy())
    ex.tunnelled(c)
    return 0
  }

  // ---- shutdown ----

  /**
   * A drain begins while the port still accepts (shutdown.acceptGraceMs): every answer closes its
   * connection, and HTTP/2 clients get a GOAWAY, so clients reconnect and the balancer in front, which
   * stops choosing this instance once /readyz says 503, takes them elsewhere. Idle connections stay
   * open until close(): one closed now could cross a request the client is sending on it.
   */
  beginDrain (): void {
    this.draining = true
    this.h2?.close()
  }

  /** Stop accepting; idle connections close now, busy ones after their answer. */
  close (): void {
    this.beginDrain()
    this.refusing = true
    this.server.close()
    for (const c of this.conns) c.closeIfIdle()
    for (const p of this.pools) p.close()
  }

  /** after the drain: every socket, tunnels included */
  closeAll (): void {
    clearInterval(this.sweepTimer)
    for (const c of this.conns) c.socket.destroy()
    this.h2?.destroyAll()
    for (const s of this.tunnels) s.destroy()
    for (const p of this.pools) p.destroyAll()
    for (const p of this.routing.pools.values()) p.close()
  }
}
