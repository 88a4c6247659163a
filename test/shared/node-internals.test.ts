/**
 * shared/node-internals: each undocumented member is found on this Node (the load-time feature test),
 * and each use does its job both through it and through the public-API fallback (absence simulated).
 */
import t, { type Test } from 'tap'
import { createServer } from 'node:http'
import { connect, createServer as createNetServer, Socket, type AddressInfo } from 'node:net'
import { once } from 'node:events'
import { fork } from 'node:child_process'
import { TLSSocket } from 'node:tls'
import { bodyAlreadyParsed, closePendingHandle, destroySoon, dumpBody, NODE_INTERNALS, tlsParent } from '../../src/shared/node-internals.js'

t.test('this Node has every member (if one goes, the fallback runs and this says which)', async (t) => {
  t.same(NODE_INTERNALS, { dump: true, destroySoon: true })
})

/** a server whose handler drops the body and answers at its 'end' (which a body nobody reads never reaches) */
async function dropBody (t: Test, has: boolean): Promise<void> {
  const size = 4 * 1024 * 1024
  const server = createServer((req, res) => {
    dumpBody(req, has)
    req.on('end', () => res.end('done'))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  const c = connect((server.address() as AddressInfo).port, '127.0.0.1')
  c.write(`POST / HTTP/1.1\r\nhost: x\r\ncontent-length: ${size}\r\nconnection: close\r\n\r\n`)
  c.end(Buffer.alloc(size, 97))
  let answer = ''
  c.setEncoding('utf8').on('data', (s: string) => { answer += s })
  await once(c, 'close')
  t.match(answer, /^HTTP\/1\.1 200[\s\S]*done$/, 'the body was read to its end and dropped: the answer came')
}

t.test('dumpBody: through _dump and through resume()', async (t) => {
  await t.test('internal', (t) => dropBody(t, true))
  await t.test('fallback', (t) => dropBody(t, false))
})

t.test('destroySoon: the written answer arrives, then the socket closes, both ways', async (t) => {
  for (const has of [true, false]) {
    const server = createNetServer((s) => { s.write('x'.repeat(256 * 1024)); destroySoon(s, has) })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const c = connect((server.address() as AddressInfo).port, '127.0.0.1')
    let n = 0
    c.on('data', (b: Buffer) => { n += b.length })
    await once(c, 'close')
    t.equal(n, 256 * 1024, `has=${has}: every byte before the close`)
    server.close()
  }
})

t.test('tlsParent: the wrapped socket, or undefined when the member is absent', async (t) => {
  const raw = new Socket()
  const tls = new TLSSocket(raw)
  t.equal(tlsParent(tls), raw, 'this Node has the member')
  t.equal(tlsParent(tls, false), undefined, 'absent: no parent, the caller keys on the TLS socket')
  t.equal(tlsParent(raw), undefined, 'a plain socket has none')
  tls.destroy()
  raw.destroy()
})

t.test('closePendingHandle: a queued handle is closed; a channel without the member is left alone', async (t) => {
  let closed = 0
  const withOne = { _pendingMessage: { handle: { close: () => { closed++ } } } }
  t.equal(closePendingHandle(withOne), true)
  t.equal(closed, 1)
  t.equal(withOne._pendingMessage, null, 'not closed twice')
  t.equal(closePendingHandle(withOne), false)
  t.equal(closePendingHandle({}), false, 'absent: nothing reachable (the caller destroys its unsent sockets)')
  const child = fork('-e', [], { execArgv: ['-e', 'setTimeout(() => {}, 60000)'] })
  t.teardown(() => child.kill())
  t.ok('_pendingMessage' in child, 'a real IPC child has the member this reaches for')
  t.equal(closePendingHandle(child), false, 'nothing queued')
})

t.test('bodyAlreadyParsed: body-parser\'s flag, else the public end of the stream', async (t) => {
  t.equal(bodyAlreadyParsed({ _body: true, readableEnded: false }), true)
  t.equal(bodyAlreadyParsed({ readableEnded: true }), true, 'absent flag: the read-to-the-end stream says it')
  t.equal(bodyAlreadyParsed({ readableEnded: false }), false)
})
