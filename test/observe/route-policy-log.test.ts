/**
 * The access log and request ids on main's route policies (redirects, compression): a redirect claylb
 * answers itself carries the request id like every other answer and is logged with the bytes that
 * went out; a compressed answer is logged with the compressed bytes the client received.
 */
import t from 'tap'
import net from 'node:net'
import { gunzipSync } from 'node:zlib'
import { startClaylb } from '../helpers/claylb.js'
import { startBackend } from '../helpers/backend.js'

/** one request on its own connection (closed by claylb); every byte it sent back */
function rawGet (url: string, head: string): Promise<Buffer> {
  const { port } = new URL(url)
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    const s = net.connect(Number(port), '127.0.0.1', () => s.write(head))
    s.on('data', (d: Buffer) => chunks.push(d))
    s.on('error', reject)
    s.on('close', () => resolve(Buffer.concat(chunks)))
  })
}

function split (answer: Buffer): { head: string, body: Buffer } {
  const end = answer.indexOf('\r\n\r\n')
  return { head: answer.subarray(0, end + 4).toString('latin1'), body: answer.subarray(end + 4) }
}

t.test('a redirect and a compressed answer: request id, bytes as the client got them', async (t) => {
  const text = 'claylb '.repeat(2000)
  const b = await startBackend((_rq, res) => { res.setHeader('content-type', 'text/plain'); res.end(text) })
  t.teardown(() => b.close())
  const c = await startClaylb({
    args: ['--upstream', b.url],
    config: {
      listen: { processes: 1 },
      routes: [
        { match: { pathPrefix: '/old/' }, redirect: { to: '/new{path}', status: 308 } },
        { match: { pathPrefix: '/text/' }, pool: 'default', compression: { algorithms: ['gzip'], minBytes: 100 } },
      ],
      log: { access: { fields: ['path', 'status', 'bytesOut', 'bodyBytesOut', 'requestId'] } },
    },
  })
  t.teardown(() => c.stop())

  const redirect = await rawGet(c.url, 'GET /old/x HTTP/1.1\r\nhost: a.test\r\nconnection: close\r\n\r\n')
  const r = split(redirect)
  t.match(r.head, /^HTTP\/1\.1 308 /)
  const id = /\r\nx-request-id: ([^\r]+)\r\n/.exec(r.head)?.[1]
  t.match(id, /^[0-9a-f]{16}-[0-9a-z]+$/, 'the redirect carries the request id')
  const rl = await c.waitForLog((l) => l['msg'] === 'request' && l['path'] === '/old/x')
  t.match(rl, { status: 308, bytesOut: redirect.length, bodyBytesOut: 0, requestId: id })

  const zipped = await rawGet(c.url, 'GET /text/a HTTP/1.1\r\nhost: a.test\r\naccept-encoding: gzip\r\nconnection: close\r\n\r\n')
  const z = split(zipped)
  t.match(z.head, /\r\ncontent-encoding: gzip\r\n/i)
  const chunked = /\r\ntransfer-encoding: chunked\r\n/i.test(z.head)
  const body = chunked ? dechunk(z.body) : z.body
  t.equal(gunzipSync(body).toString(), text, 'the answer is the upstream\'s, compressed')
  const zl = await c.waitForLog((l) => l['msg'] === 'request' && l['path'] === '/text/a')
  t.match(zl, { status: 200, bodyBytesOut: body.length })
  t.ok((zl['bodyBytesOut'] as number) < text.length, 'the compressed size, not the upstream\'s')
})

function dechunk (b: Buffer): Buffer {
  const out: Buffer[] = []
  let i = 0
  for (;;) {
    const eol = b.indexOf('\r\n', i)
    const n = parseInt(b.subarray(i, eol).toString('latin1'), 16)
    if (n === 0) return Buffer.concat(out)
    out.push(b.subarray(eol + 2, eol + 2 + n))
    i = eol + 2 + n + 2
  }
}
