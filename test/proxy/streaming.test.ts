import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import net from 'node:net'
import { readFileSync } from 'node:fs'
import { pipeline } from 'node:stream/promises'
import { Readable } from 'node:stream'
import { request } from 'undici'
import { startBackend } from '../helpers/backend.js'
import { startClaylb } from '../helpers/claylb.js'
import { agent, sleep } from '../helpers/http.js'

const MB = 1024 * 1024
const SIZE = 20 * MB
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

/** resident set size of a pid in MB, from /proc */
function rssMb (pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Number(m[1]) / 1024 : NaN
}

// one 1 MB block repeated: cheap to make, and the hash still covers every byte
const block = randomBytes(MB)
function* blocks (n: number): Generator<Buffer> { for (let i = 0; i < n; i++) yield block }
const expectedSha = ((): string => { const h = createHash('sha256'); for (const b of blocks(20)) h.update(b); return h.digest('hex') })()

t.test('20 MB upload and download stream through with the right SHA-256 and bounded memory', async (t) => {
  const backend = await startBackend((req, res) => {
    if (req.method === 'POST') {
      const h = createHash('sha256')
      let n = 0
      req.on('data', (c: Buffer) => { h.update(c); n += c.length })
      req.on('end', () => res.end(JSON.stringify({ sha: h.digest('hex'), n })))
      return
    }
    res.writeHead(200, { 'content-length': SIZE })
    const it = blocks(20)
    const write = (): void => {
      for (;;) {
        const n = it.next()
        if (n.done) { res.end(); return }
        if (!res.write(n.value)) { res.once('drain', write); return }
      }
    }
    write()
  })
  const lb = await startClaylb({ args: ['--upstream', backend.url], config: { limits: { maxBodyBytes: 64 * MB }, log: { access: false } } })
  t.teardown(async () => { await lb.stop(); await backend.close() })
  await request(`${lb.url}/warm`, { dispatcher: agent }).then((r) => r.body.dump())
  const before = rssMb(lb.pid)

  const up = await request(`${lb.url}/upload`, { dispatcher: agent, method: 'POST', body: Readable.from(blocks(20)), headers: { 'content-length': String(SIZE) } })
  const got = await up.body.json() as { sha: string, n: number }
  t.equal(got.n, SIZE)
  t.equal(got.sha, expectedSha, 'upload arrives byte for byte')

  const down = await request(`${lb.url}/download`, { dispatcher: agent })
  const h = createHash('sha256')
  let n = 0
  for await (const c of down.body) { h.update(c as Buffer); n += (c as Buffer).length }
  t.equal(n, SIZE)
  t.equal(h.digest('hex'), expectedSha, 'download arrives byte for byte')

  // Five more rounds each way (200 MB in all): a proxy that buffered would grow by the body size each
  // time; a streaming one settles at its buffer pools and young generation.
  for (let i = 0; i < 5; i++) {
    const u = await request(`${lb.url}/upload`, { dispatcher: agent, method: 'POST', body: Readable.from(blocks(20)), headers: { 'content-length': String(SIZE) } })
    await u.body.dump()
    const d = await request(`${lb.url}/download`, { dispatcher: agent })
    for await (const c of d.body) void c
  }
  const growth = rssMb(lb.pid) - before
  t.ok(growth < 80, `proxy RSS grew ${growth.toFixed(1)} MB while 240 MB streamed through it`)
})

t.test('a client that never reads a large response does not make the proxy buffer it', async (t) => {
  let written = 0
  const backend = await startBackend((_req, res) => {
    res.writeHead(200, { 'content-length': 200 * MB })
    const write = (): void => {
      while (written < 200 * MB) {
        written += block.length
        if (!res.write(block)) { res.once('drain', write); return }
      }
      res.end()
    }
    res.on('close', () => {})
    write()
  })
  const lb = await startClaylb({ args: ['--upstream', backend.url], config: { log: { access: false } } })
  t.teardown(async () => { await lb.stop(); await backend.close() })
  const before = rssMb(lb.pid)
  const port = Number(new URL(lb.url).port)
  const sock = net.connect(port, '127.0.0.1')
  sock.write('GET /big HTTP/1.1\r\nhost: x\r\n\r\n')
  sock.pause() // never read
  await sleep(2000)
  const growth = rssMb(lb.pid) - before
  t.ok(written < 64 * MB, `backend could write only ${(written / MB).toFixed(0)} MB of 200 MB: backpressure reached it`)
  t.ok(growth < 48, `proxy RSS grew ${growth.toFixed(1)} MB`)
  sock.destroy()
})

t.test('chunked upload through the proxy', async (t) => {
  const backend = await startBackend((req, res) => { void pipeline(req, res) })
  const lb = await startClaylb({ args: ['--upstream', backend.url], config: { log: { access: false } } })
  t.teardown(async () => { await lb.stop(); await backend.close() })
  const parts = [Buffer.from('hello '), Buffer.from('chunked '), Buffer.from('world')]
  const r = await request(`${lb.url}/echo`, { dispatcher: agent, method: 'POST', body: Readable.from(parts) })
  t.equal(r.statusCode, 200)
  t.equal(await r.body.text(), 'hello chunked world')
})
