/**
 * The engine's fallback when the parser cannot consume the socket handle: llhttp fed from 'data'
 * events (CLAYLB_ENGINE_NO_CONSUME=1). The same traffic as the consume path: bodies both ways,
 * chunked answers, pipelining, an extension method, an upgrade, a parse error.
 */
import t from 'tap'
import http from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { RawClient } from '../helpers/raw.js'
import { startClaylb } from '../helpers/claylb.js'

t.test('everything passes on the data-event fallback', async (t) => {
  const backend = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      if (req.url === '/chunked') { res.write('ab'); res.end('cd'); return }
      res.end(`${req.method} ${req.url} ${Buffer.concat(chunks).length}`)
    })
  })
  backend.on('upgrade', (_req: http.IncomingMessage, socket: Socket) => {
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n')
    socket.on('data', (d) => socket.write(d))
  })
  await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve))
  const lb = await startClaylb({
    args: ['--upstream', `http://127.0.0.1:${(backend.address() as AddressInfo).port}`],
    config: { engine: 'raw', healthCheck: { enabled: false } },
    env: { CLAYLB_ENGINE_NO_CONSUME: '1' },
  })
  t.teardown(async () => { await lb.stop(); backend.closeAllConnections(); backend.close() })
  const port = Number(new URL(lb.url).port)

  const c = await RawClient.connect(port)
  t.teardown(() => c.destroy())
  await c.write('POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /chunked HTTP/1.1\r\nHost: a\r\n\r\n' +
    'PUT /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n')
  t.equal((await c.readResponse())?.body, 'POST /a 5', 'a body')
  const chunked = await c.readResponse()
  t.equal(chunked?.headers['transfer-encoding'], 'chunked')
  t.equal(chunked?.body, 'abcd', 're-chunked answer')
  t.equal((await c.readResponse())?.body, 'PUT /c 3', 'a chunked body, pipelined')

  const bad = await RawClient.connect(port)
  t.teardown(() => bad.destroy())
  await bad.write('GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n')
  t.equal((await bad.readResponse())?.status, 400, 'a parse error is a 400')
  t.ok(await bad.waitClosed(5000))

  const ws = await RawClient.connect(port)
  t.teardown(() => ws.destroy())
  await ws.write('GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nearly')
  t.equal((await ws.readResponse())?.status, 101)
  t.ok(await ws.waitFor(() => ws.buffer.includes('early'), 5000), 'bytes sent with the upgrade request go through the tunnel')
  await ws.write('later')
  t.ok(await ws.waitFor(() => ws.buffer.includes('later'), 5000), 'and after it')
})
