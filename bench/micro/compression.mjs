// Answer compression: CPU time per MiB of answer body through the compressor claylb streams with
// (dist/data/policy/compress-stream.js: Node's zlib, gzip or brotli), at each level, in 16 KiB writes
// as an upstream's reads arrive. CPU is the process's (process.cpuUsage: zlib's stream work runs on
// the libuv pool, counted too). Bodies: JSON records (an API), and HTML (a page); seeded, so every
// run compresses the same bytes. Prints ms of CPU per MiB, MiB/s of one core, and the size ratio.
// (not through harness.mjs: no mitata here, so it runs without bench/'s own install)
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'

const dist = (p) => pathToFileURL(join(import.meta.dirname, '..', '..', 'dist', p)).href
const { CompressStream } = await import(dist('data/policy/compress-stream.js'))
const { Compression } = await import(dist('data/policy/compression.js'))

let seed = 42
const rnd = () => { seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff; return seed / 0x7fffffff }
const word = () => Math.floor(rnd() * 1e9).toString(36)
function jsonBody (bytes) {
  let s = '['
  while (s.length < bytes) s += JSON.stringify({ id: Math.floor(rnd() * 1e6), name: `${word()} ${word()}`, email: `${word()}@example.com`, status: rnd() < 0.5 ? 'active' : 'pending', total: Math.round(rnd() * 1e5) / 100, tags: [word(), word()] }) + ','
  return Buffer.from(s + '{}]')
}
function htmlBody (bytes) {
  let s = '<!doctype html><html><head><title>Shop</title></head><body><ul>'
  while (s.length < bytes) s += `<li class="product"><a href="/p/${word()}">${word()} ${word()}</a><span class="price">${(rnd() * 100).toFixed(2)} €</span></li>\n`
  return Buffer.from(s + '</ul></body></html>')
}

const MiB = 1024 * 1024
const SIZE = 8 * MiB
const CHUNK = 16 * 1024

/** compress `body` once through a CompressStream; resolves with [cpu ms, output bytes] */
function once (algorithm, settings, body) {
  return new Promise((resolve) => {
    let out = 0
    const cpu = process.cpuUsage()
    const sink = {
      sendOut (c) { out += c.length; return true },
      compressorDrained () { write() },
      compressedEnd () { const d = process.cpuUsage(cpu); resolve([(d.user + d.system) / 1000, out]) },
      compressorFailed (err) { throw err },
    }
    const z = new CompressStream(algorithm, new Compression(settings), sink)
    let at = 0
    function write () {
      while (at < body.length) {
        const ok = z.write(body.subarray(at, at + CHUNK))
        at += CHUNK
        if (!ok) return
      }
      z.end()
    }
    write()
  })
}

const base = { enabled: true, algorithms: ['gzip', 'br'], types: ['text/*'], minBytes: 0, gzipLevel: 5, brotliQuality: 4 }
const rows = [
  ['gzip', 1], ['gzip', 5], ['gzip', 6], ['gzip', 9],
  ['br', 1], ['br', 4], ['br', 5], ['br', 11],
]
console.log(`| body | algorithm, level | CPU ms per MiB | MiB/s per core | compressed size |`)
console.log(`| --- | --- | ---: | ---: | ---: |`)
for (const [name, body] of [['JSON', jsonBody(SIZE)], ['HTML', htmlBody(SIZE)]]) {
  for (const [alg, level] of rows) {
    const s = { ...base, gzipLevel: alg === 'gzip' ? level : 5, brotliQuality: alg === 'br' ? level : 4 }
    // brotli 11 is slow: a smaller sample keeps the run short (the figure is per MiB either way)
    const b = alg === 'br' && level >= 10 ? body.subarray(0, MiB) : body
    await once(alg, s, b.subarray(0, MiB)) // warm-up
    const times = []
    let size = 0
    for (let i = 0; i < 3; i++) {
      const [ms, out] = await once(alg, s, b)
      times.push(ms)
      size = out
    }
    times.sort((x, y) => x - y)
    const perMiB = times[1] / (b.length / MiB)
    console.log(`| ${name} | ${alg} ${level} | ${perMiB.toFixed(1)} | ${(1000 / perMiB).toFixed(0)} | ${(100 * size / b.length).toFixed(1)} % |`)
  }
}
