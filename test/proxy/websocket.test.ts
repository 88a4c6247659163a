import t from 'tap'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { WebSocket, WebSocketServer } from 'ws'
import { startBackend } from '../helpers/backend.js'
import { startClaylb } from '../helpers/claylb.js'
import { req } from '../helpers/http.js'

async function echoWsServer (): Promise<{ url: string, close (): Promise<void> }> {
  const server = http.createServer((_req, res) => res.end('http'))
  const wss = new WebSocketServer({ server })
  wss.on('connection', (ws) => ws.on('message', (m, isBinary) => ws.send(isBinary ? m : `echo:${m.toString()}`)))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => { for (const c of wss.clients) c.terminate(); wss.close(); server.closeAllConnections(); server.close(() => resolve()) }),
  }
}

function wsRoundTrip (url: string, messages: string[]): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url)
    const got: string[] = []
    ws.on('open', () => { for (const m of messages) ws.send(m) })
    ws.on('message', (m) => { got.push(m.toString()); if (got.length === messages.length) { ws.close(); resolve(got) } })
    ws.on('error', reject)
  })
}

t.test('WebSocket echo through the proxy', async (t) => {
  const be = await echoWsServer()
  const lb = await startClaylb({ args: ['--upstream', be.url] })
  t.teardown(async () => { await lb.stop(); await be.close() })
  const wsUrl = lb.url.replace('http:', 'ws:')
  t.same(await wsRoundTrip(`${wsUrl}/chat`, ['a', 'b', 'c']), ['echo:a', 'echo:b', 'echo:c'])
  // several at once
  const many = await Promise.all(Array.from({ length: 10 }, (_, i) => wsRoundTrip(`${wsUrl}/chat`, [`m${i}`])))
  t.same(many.flat().sort(), Array.from({ length: 10 }, (_, i) => `echo:m${i}`).sort())
})

t.test('an upstream that rejects the upgrade gives the client that status; the proxy keeps running', async (t) => {
  const rejecting = await startBackend((req, res) => { req.resume(); res.writeHead(403, { 'content-type': 'text/plain' }); res.end('no websockets here') })
  rejecting.server.on('upgrade', (_req, socket) => {
    socket.end('HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: 18\r\nconnection: close\r\n\r\nno websockets here')
  })
  const lb = await startClaylb({ args: ['--upstream', rejecting.url] })
  t.teardown(async () => { await lb.stop(); await rejecting.close() })
  const status = await new Promise<number>((resolve, reject) => {
    const ws = new WebSocket(`${lb.url.replace('http:', 'ws:')}/chat`)
    ws.on('unexpected-response', (_req, res) => { resolve(res.statusCode ?? 0); res.resume() })
    ws.on('open', () => reject(new Error('upgrade should have been refused')))
    ws.on('error', () => {})
  })
  t.equal(status, 403)
  // a dead upstream for the upgrade: the client gets an error answer, the proxy lives on
  const r = await req(`${lb.url}/after`)
  t.equal(r.status, 403, 'plain HTTP still proxied afterwards')
  t.equal(lb.proc.exitCode, null, 'claylb still running')
})

t.test('an upgrade to a dead upstream: the client gets an error, the proxy keeps running', async (t) => {
  const be = await echoWsServer()
  const lb = await startClaylb({ args: ['--upstream', be.url] })
  t.teardown(async () => { await lb.stop() })
  await be.close()
  const outcome = await new Promise<string>((resolve) => {
    const ws = new WebSocket(`${lb.url.replace('http:', 'ws:')}/chat`)
    ws.on('unexpected-response', (_req, res) => { resolve(`status ${res.statusCode}`); res.resume() })
    ws.on('open', () => resolve('open'))
    ws.on('error', (err) => resolve(`error ${err.message}`))
  })
  t.not(outcome, 'open')
  t.match(outcome, /status 502|error/)
  const admin = await req(`${lb.admin}/healthz`)
  t.equal(admin.status, 200, 'claylb alive')
})
