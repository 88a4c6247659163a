/**
 * The raw engine's request state machine in process, with fake sockets: every transition of one
 * exchange (connect, write, head held back, body, complete, retries, deadline, client gone) and what
 * each side was given. No network; the fakes record what the exchange wrote and asked for.
 */
import t from 'tap'
import fc from 'fast-check'
import { Exchange } from '../../src/data/engine/exchange.js'
import type { ClientConn } from '../../src/data/engine/client-conn.js'
import type { Engine } from '../../src/data/engine/engine.js'
import type { UpstreamConn } from '../../src/data/upstream/upstream-pool.js'
import { ProxyCore } from '../../src/data/engine/proxy.js'
import { Cluster } from '../../src/data/upstream/cluster.js'
import { Host } from '../../src/data/upstream/host.js'
import { RoutePool } from '../../src/data/routing/route-pool.js'
import { RoutingState } from '../../src/data/routing/routing-state.js'

class FakeSocket {
  written = ''
  /** write calls: what reaches the kernel as separate writes (a corked pair is one writev) */
  writes = 0
  destroyed = false
  write (d: string | Buffer): boolean { this.writes++; this.written += typeof d === 'string' ? d : d.toString('latin1'); return true }
  cork (): void {}
  uncork (): void {}
  destroy (): void { this.destroyed = true }
}

class FakeUpstream {
  connected = false
  reused = false
  gotBytes = false
  /** the kernel refused the try's first write (set by a test before it fails the try) */
  refused = false
  socket = new FakeSocket()
  pool = { authority: 'up.test' }
  reusable: boolean | null = null
  destroyed = false
  constructor (readonly host: Host) {}
  write (d: string | Buffer): boolean { return this.socket.write(d) }
  done (reusable: boolean): void { this.reusable = reusable }
  destroy (): void { this.destroyed = true }
  pauseReading (): void {}
  resumeReading (): void {}
  uncork (): void {}
  resetUnread (): boolean { return false }
}

function rig (hosts = 2, o: { attempts?: number } = {}) {
  const cluster = new Cluster()
  for (let i = 0; i < hosts; i++) {
    cluster.add(new Host({ id: `h${i}`, url: `http://127.0.0.1:${10000 + i}` }))
  }
  const retry = { attempts: o.attempts ?? 2, budgetPercent: 100, minRetryConcurrency: 10, backoffBaseMs: 0, backoffMaxMs: 0 }
  const pool = new RoutePool({ name: 'default', cluster, balancer: { policy: 'round-robin' }, retry, timeouts: { connectMs: 1000, headersMs: 10_000, requestMs: 10_000 } })
  const core = new ProxyCore({
    maxBodyBytes: 1 << 20,
    accessLog: null,
  })
  const ups: FakeUpstream[] = []
  const timing: string[] = []
  const logged: string[] = []
  const engine = {
    core,
    logged,
    logProblem: (_ex: Exchange, err: { logDetail?: string }) => logged.push(err.logDetail ?? ''),
    routing: RoutingState.single(pool),
    proto: 'http',
    draining: false,
    o: { maxHeaderBytes: 16384, maxHeaders: 100, underscoresInHeaders: 'drop', upstreamKeepAliveMs: 4000, observe: null },
    poolFor: (host: Host) => ({ acquire: () => { const u = new FakeUpstream(host); ups.push(u); return u } }),
    timeConnect: () => timing.push('connect'),
    timeHeaders: () => timing.push('headers'),
    untime: () => timing.push('untime'),
  }
  const client = new FakeSocket()
  const done: Exchange[] = []
  const conn = {
    socket: client,
    engine,
    remoteAddress: '10.0.0.9',
    trusted: false,
    http2: false,
    tlsSocket: () => null,
    closing: false,
    hold () {},
    unhold () {},
    lastAnswer: () => false,
    uncorkLater: (c: FakeUpstream) => c.uncork(),
    exchangeDone: (ex: Exchange) => done.push(ex),
  }
  const ex = new Exchange(conn as unknown as ClientConn)
  t.teardown(() => { core.close(); pool.close() })
  return { core, pool, ex, ups, client, done, timing, logged, engine: engine as unknown as Engine }
}

const up = (u: FakeUpstream): UpstreamConn => u as unknown as UpstreamConn

/** a one-byte POST made active, its first try connected (`reused`: on a pooled socket) and its request written */
function connectedPost (ex: Exchange, ups: FakeUpstream[], reused = false): FakeUpstream {
  ex.fromHead(1, 1, ['Host', 'a', 'Content-Length', '1'], 'POST', '/o', true)
  ex.onClientBody(Buffer.from('x'))
  ex.bodyDone = true
  ex.activate()
  const u = ups[0]!
  u.connected = true
  u.reused = reused
  ex.onUpstreamConnected(up(u))
  return u
}

/** a bodiless GET made active, its first try connected and its head written */
function connectedGet (ex: Exchange, ups: FakeUpstream[]): FakeUpstream {
  ex.fromHead(1, 1, ['Host', 'a'], 'GET', '/', true)
  ex.bodyDone = true
  ex.activate()
  const u = ups[0]!
  u.connected = true
  ex.onUpstreamConnected(up(u))
  return u
}

t.test('a GET: connect, head written once, the answer\'s head held until its first byte, connection reused', async (t) => {
  const { core, ex, ups, client, done, timing } = rig()
  ex.fromHead(1, 1, ['Host', 'a.test', 'Connection', 'keep-alive, x-drop', 'X-Drop', '1', 'X-Keep', '2'], 'GET', '/p?q', true)
  ex.bodyDone = true
  ex.activate()
  t.equal(core.inflight, 1, 'counted in flight')
  t.equal(ups.length, 1)
  t.same(timing, ['connect'], 'the connect is timed')
  const u = ups[0]!
  u.connected = true
  ex.onUpstreamConnected(up(u))
  t.equal(u.socket.written, 'GET /p?q HTTP/1.1\r\nHost: a.test\r\nX-Keep: 2\r\nx-forwarded-for: 10.0.0.9\r\nx-forwarded-proto: http\r\nx-forwarded-host: a.test\r\nvia: 1.1 claylb\r\n\r\n',
    'one head: hop-by-hop and Connection-listed names dropped, the proxy\'s own added')
  t.same(timing, ['connect', 'untime', 'headers'], 'then the wait for the answer\'s head is timed')
  t.equal(ex.onResponseHead(up(u), 200, 'OK', ['Content-Length', '2', 'Connection', 'keep-alive', 'X-A', 'b'], false), 0)
  t.equal(client.written, '', 'the head waits for the first body byte')
  ex.onResponseBody(up(u), Buffer.from('ok'))
  t.equal(client.written, 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: b\r\n\r\nok')
  ex.onResponseComplete(up(u))
  t.equal(u.reusable, true, 'the upstream connection goes back to the pool')
  t.equal(done.length, 1, 'the connection is told')
  t.equal(ex.status, 200)
  t.equal(core.inflight, 0)
  t.equal(ex.host!.inflight, 0)
})

t.test('a head and a small first body chunk leave in one write; any size: the same bytes', async (t) => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 9000 }), (size) => {
    const { ex, ups, client } = rig()
    const u = connectedGet(ex, ups)
    ex.onResponseHead(up(u), 200, 'OK', ['Content-Length', String(size)], false)
    const body = Buffer.alloc(size, 'b')
    ex.onResponseBody(up(u), body)
    ex.onResponseComplete(up(u))
    const head = `HTTP/1.1 200 OK\r\nContent-Length: ${size}\r\n\r\n`
    t.equal(client.written, head + body.toString('latin1'))
    if (head.length + size <= 4096) t.equal(client.writes, 1, `${size} bytes of body: one write`)
    else t.equal(client.writes, 2, `${size} bytes of body: head and body, corked`)
  }), { numRuns: 60 })
})

t.test('an answer without a length is chunked for an HTTP/1.1 client and closes for HTTP/1.0', async (t) => {
  for (const minor of [1, 0]) {
    const { ex, ups, client } = rig()
    ex.fromHead(1, minor, ['Host', 'a'], 'GET', '/', minor === 1)
    ex.bodyDone = true
    ex.activate()
    const u = ups[0]!
    u.connected = true
    ex.onUpstreamConnected(up(u))
    ex.onResponseHead(up(u), 200, 'OK', [], false)
    ex.onResponseBody(up(u), Buffer.from('abc'))
    ex.onResponseComplete(up(u))
    if (minor === 1) t.equal(client.written, 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n')
    else t.equal(client.written, 'HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nabc')
    t.equal(ex.closeAfter, minor === 0)
  }
})

t.test('a refused connect is retried on the other host; the body is replayed', async (t) => {
  const { ex, ups, client } = rig()
  ex.fromHead(1, 1, ['Host', 'a', 'Content-Length', '4'], 'POST', '/o', true)
  ex.activate()
  ex.onClientBody(Buffer.from('data'))
  ex.onClientBodyEnd()
  const first = ups[0]!
  ex.onUpstreamError(up(first), 'ECONNREFUSED')
  t.equal(ups.length, 2, 'a second try')
  t.not(ups[1]!.host, first.host, 'on another host')
  const second = ups[1]!
  second.connected = true
  ex.onUpstreamConnected(up(second))
  t.match(second.socket.written, /^POST \/o HTTP\/1\.1\r\n[^]*\r\n\r\ndata$/, 'the whole request, body included')
  ex.onResponseHead(up(second), 201, 'Created', ['Content-Length', '0'], false)
  ex.onResponseComplete(up(second))
  t.match(client.written, /^HTTP\/1\.1 201 Created\r\n/)
  t.equal(ex.attempts, 2)
})

t.test('a POST reset after its request was written, fresh or pooled: 502, never sent again (it may have run)', async (t) => {
  for (const reused of [false, true]) {
    const { ex, ups, client } = rig(2, { attempts: 3 })
    const u = connectedPost(ex, ups, reused)
    // a reset after the bytes left: the upstream may have read the head, acted, and died
    ex.onUpstreamError(up(u), 'ECONNRESET')
    t.equal(ups.length, 1, `${reused ? 'pooled' : 'fresh'}: no second try although attempts allow it`)
    t.match(client.written, /^HTTP\/1\.1 502 Bad Gateway\r\n/)
  }
})

t.test('a POST whose first write the kernel refused (nothing left): made again on another host, outside the attempts', async (t) => {
  const { ex, ups, client } = rig(2, { attempts: 1 })
  const u = connectedPost(ex, ups)
  u.refused = true
  ex.onUpstreamError(up(u), 'EPIPE')
  t.equal(ups.length, 2, 'made again although retry.attempts is 1')
  t.not(ups[1]!.host, u.host, 'on the other host')
  const second = ups[1]!
  second.connected = true
  ex.onUpstreamConnected(up(second))
  t.match(second.socket.written, /^POST \/o HTTP\/1\.1\r\n[^]*\r\n\r\nx$/)
  ex.onResponseHead(up(second), 201, 'Created', ['Content-Length', '0'], false)
  ex.onResponseComplete(up(second))
  t.match(client.written, /^HTTP\/1\.1 201 Created\r\n/)
})

t.test('a POST whose connection closes (EOF) after the request was written, fresh or pooled: 502, not retried', async (t) => {
  for (const reused of [false, true]) {
    const { ex, ups, client, logged } = rig()
    const u = connectedPost(ex, ups, reused)
    // a FIN: the upstream may have read the request and acted on it before it died
    ex.onUpstreamError(up(u), 'EOF')
    t.equal(ups.length, 1, `${reused ? 'pooled' : 'fresh'}: no second try, the upstream may have acted on it`)
    t.match(client.written, /^HTTP\/1\.1 502 Bad Gateway\r\n[^]*application\/problem\+json/)
    t.notMatch(client.written, /h0|h1|127\.0\.0\.1|EOF/, 'the client is told neither the upstream nor the error')
    t.match(logged, [/^upstream h[01] failed: EOF$/], 'the log is')
  }
})

t.test('a POST reset while its body is still streaming: 502, not retried (the upstream may have read part of it)', async (t) => {
  const { ex, ups, client } = rig(2, { attempts: 1 })
  // larger than BUFFER_LIMIT: not read whole first, it streams
  ex.fromHead(1, 1, ['Host', 'a', 'Content-Length', '100000'], 'POST', '/o', true)
  ex.onClientBody(Buffer.from('12345'))
  ex.activate()
  const u = ups[0]!
  u.connected = true
  ex.onUpstreamConnected(up(u))
  t.match(u.socket.written, /\r\n\r\n12345$/, 'the head and the first half went out')
  ex.onUpstreamError(up(u), 'EPIPE')
  t.equal(ups.length, 1, 'no second try')
  t.match(client.written, /^HTTP\/1\.1 502 Bad Gateway\r\n[^]*connection: close\r\n/, '502, and the connection closes: the rest of the body is not a next request')
})

t.test('a PUT reset mid-body, its retry waiting its backoff while the body passes REPLAY_LIMIT: the retry still gets the whole body', async (t) => {
  const { ex, ups, pool } = rig(2, { attempts: 2 })
  pool.retry.backoffMs = () => 20 // the retry waits on its timer: no try between the two
  ex.fromHead(1, 1, ['Host', 'a', 'Content-Length', '100000'], 'PUT', '/o', true)
  ex.onClientBody(Buffer.alloc(40000, 'a'))
  ex.activate()
  const first = ups[0]!
  first.connected = true
  ex.onUpstreamConnected(up(first))
  ex.onUpstreamError(up(first), 'ECONNRESET')
  t.equal(ups.length, 1, 'the retry waits')
  // 70000 bytes in all: past REPLAY_LIMIT while no try is open (the first try's written count must not apply)
  ex.onClientBody(Buffer.alloc(30000, 'b'))
  await new Promise((resolve) => setTimeout(resolve, 40))
  t.equal(ups.length, 2, 'the retry was made')
  const second = ups[1]!
  second.connected = true
  ex.onUpstreamConnected(up(second))
  ex.onClientBody(Buffer.alloc(30000, 'c'))
  ex.onClientBodyEnd()
  const body = second.socket.written.slice(second.socket.written.indexOf('\r\n\r\n') + 4)
  t.equal(body, 'a'.repeat(40000) + 'b'.repeat(30000) + 'c'.repeat(30000), 'the whole body, from its first byte')
})

t.test('a GET on a pooled connection that closes (EOF) before any answer byte: made again (idempotent, within the attempts)', async (t) => {
  const { ex, ups, client } = rig(2, { attempts: 2 })
  const u = connectedGet(ex, ups)
  u.reused = true
  ex.onUpstreamError(up(u), 'EOF')
  t.equal(ups.length, 2, 'made again although retry.attempts is 1')
  const second = ups[1]!
  second.connected = true
  ex.onUpstreamConnected(up(second))
  ex.onResponseHead(up(second), 200, 'OK', ['Content-Length', '0'], false)
  ex.onResponseComplete(up(second))
  t.match(client.written, /^HTTP\/1\.1 200 OK\r\n/)
})

t.test('a POST on a stale pooled connection (its first write refused) is made again once, whatever the method', async (t) => {
  const { ex, ups, client } = rig(2, { attempts: 1 })
  const stale = connectedPost(ex, ups, true)
  stale.refused = true
  ex.onUpstreamError(up(stale), 'EPIPE')
  t.equal(ups.length, 2, 'made again although retry.attempts is 1')
  const fresh = ups[1]!
  fresh.connected = true
  ex.onUpstreamConnected(up(fresh))
  t.match(fresh.socket.written, /\r\n\r\nx$/)
  // once only: a second stale failure is not retried again
  fresh.reused = true
  fresh.refused = true
  ex.onUpstreamError(up(fresh), 'EPIPE')
  t.equal(ups.length, 2)
  t.match(client.written, /^HTTP\/1\.1 502 /)
})

t.test('an upstream that breaks after part of the answer went out: the client connection is cut, no second answer', async (t) => {
  const { ex, ups, client } = rig()
  const u = connectedGet(ex, ups)
  ex.onResponseHead(up(u), 200, 'OK', ['Content-Length', '10'], false)
  ex.onResponseBody(up(u), Buffer.from('12345'))
  ex.onUpstreamError(up(u), 'ECONNRESET')
  t.ok(client.destroyed, 'cut')
  t.equal(ex.status, 502)
  t.notMatch(client.written, /problem/)
})

t.test('an answer that broke after its head, before any body byte: a 502 problem (the held head never went out)', async (t) => {
  const { ex, ups, client } = rig()
  const u = connectedGet(ex, ups)
  ex.onResponseHead(up(u), 200, 'OK', ['Content-Length', '10'], false)
  ex.onUpstreamError(up(u), 'ECONNRESET')
  t.equal(client.destroyed, false, 'not cut')
  t.match(client.written, /^HTTP\/1\.1 502 Bad Gateway\r\n/, 'a problem instead of the held head')
  t.notMatch(client.written, /200 OK/)
  t.equal(ex.status, 502)
})

t.test('the deadline: 504 problem, the upstream connection destroyed', async (t) => {
  const { core, pool, ex, ups, client } = rig()
  ex.fromHead(1, 1, ['Host', 'a'], 'GET', '/', true)
  ex.bodyDone = true
  ex.activate()
  const u = ups[0]!
  ex.onDeadline()
  t.ok(u.destroyed)
  t.match(client.written, /^HTTP\/1\.1 504 Gateway Timeout\r\n/)
  t.equal(core.inflight, 0)
  t.equal(pool.requests.size, 0, "out of its pool's deadline list")
})

t.test('the client leaves: 499, the upstream connection destroyed, counters back to 0', async (t) => {
  const { core, ex, ups } = rig()
  const u = connectedGet(ex, ups)
  ex.clientClosed()
  t.ok(u.destroyed)
  t.equal(ex.status, 499)
  t.equal(core.inflight, 0)
  t.equal(ex.host!.inflight, 0)
  // late events of the dead try change nothing
  ex.onResponseHead(up(u), 200, 'OK', [], false)
  ex.onResponseComplete(up(u))
  t.equal(ex.status, 499)
})

t.test('refusals decided from the head are answered in turn and never reach an upstream', async (t) => {
  const cases: Array<[string[], string, string, number, number]> = [
    [['Host', 'a b'], 'GET', '/', 1, 400],
    [[], 'GET', '/', 1, 400],
    [['Host', 'a'], 'GET', '/x#frag', 1, 400],
    [['Host', 'a'], 'CONNECT', 'a:443', 1, 501],
    [['Host', 'a', 'Transfer-Encoding', 'gzip, chunked'], 'POST', '/', 1, 501],
    [['Host', 'a', 'Expect', 'nope'], 'GET', '/', 1, 417],
    [['Host', 'a', 'Content-Length', String(2 << 20)], 'POST', '/', 1, 413],
    [['Host', 'a'], 'GET', 'http://b/x', 1, 400],
  ]
  for (const [headers, method, url, minor, status] of cases) {
    const { ex, ups, client } = rig()
    ex.fromHead(1, minor, headers, method, url, true)
    ex.bodyDone = true
    ex.activate()
    t.equal(ups.length, 0, `${method} ${url} ${JSON.stringify(headers)}: no upstream`)
    t.match(client.written, new RegExp(`^HTTP/1\\.1 ${status} `), `answered ${status}`)
  }
  const { ex } = rig()
  ex.fromHead(1, 1, ['Host', 'a'], 'GET', 'http://a/x?y', true)
  t.equal(ex.refusal, null)
  t.equal(ex.path, '/x?y', 'absolute-form naming the Host becomes origin-form')
})

t.test('property: whatever fails how, a request that must not run twice leaves at most one try, and that one ends it', async (t) => {
  const step = fc.record({
    connected: fc.boolean(),
    refused: fc.boolean(),
    reused: fc.boolean(),
    code: fc.constantFrom('ECONNRESET', 'EPIPE', 'EOF', 'ECONNREFUSED', 'HPE_INVALID_CONSTANT'),
  })
  fc.assert(fc.property(fc.constantFrom('POST', 'PATCH', 'GET', 'PUT'), fc.integer({ min: 1, max: 4 }), fc.array(step, { minLength: 1, maxLength: 8 }), (method, attempts, steps) => {
    const { ex, ups, client, core, pool } = rig(3, { attempts })
    ex.fromHead(1, 1, ['Host', 'a', 'Content-Length', '1'], method, '/o', true)
    ex.onClientBody(Buffer.from('x'))
    ex.onClientBodyEnd()
    ex.activate()
    const left: number[] = []
    for (let k = 0; k < steps.length && k < ups.length && !ex.finished; k++) {
      const s = steps[k]!
      const u = ups[k]!
      u.reused = s.reused
      if (s.connected) {
        u.connected = true
        ex.onUpstreamConnected(up(u))
        u.refused = s.refused
        if (!s.refused) left.push(k)
      }
      ex.onUpstreamError(up(u), s.code)
    }
    const idempotent = method === 'GET' || method === 'PUT'
    if (!idempotent) {
      // the oracle: bytes that left are an unknown outcome; nothing may follow them
      if (left.length > 1) return false
      if (left.length === 1 && (ups.length !== left[0]! + 1 || !client.written.startsWith('HTTP/1.1 502 '))) return false
    }
    // every try but the one "not-sent" retry counts against retry.attempts
    if (ups.length > attempts + 1) return false
    core.close()
    pool.close()
    return true
  }), { numRuns: 300 })
  t.pass('300 failure sequences')
})
