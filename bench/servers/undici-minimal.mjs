// The naive baseline: a minimal undici reverse proxy. One undici Pool per backend, round-robin,
// pool.stream into the response, hop-by-hop headers dropped in both directions, nothing else.
// usage: node undici-minimal.mjs PORT UPSTREAM_URL...
// undici resolves from the repository's own node_modules: the same undici version claylb runs on.
import http from 'node:http'
import { Pool } from 'undici'

const [port, ...upstreams] = process.argv.slice(2)
const pools = upstreams.map((u) => new Pool(u, { connections: 256, pipelining: 1 }))
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'expect', 'proxy-authorization', 'proxy-authenticate'])
let next = 0

http.createServer((req, res) => {
  const pool = pools[next]
  next = (next + 1) % pools.length
  const raw = req.rawHeaders
  const headers = []
  for (let i = 0; i < raw.length; i += 2) if (!HOP_BY_HOP.has(raw[i].toLowerCase())) headers.push(raw[i], raw[i + 1])
  const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined
  pool.stream({ method: req.method, path: req.url, headers, body: hasBody ? req : null }, ({ statusCode, headers }) => {
    for (const h of HOP_BY_HOP) delete headers[h]
    res.writeHead(statusCode, headers)
    return res
  }, (err) => {
    if (err) {
      if (!res.headersSent) res.writeHead(502)
      res.end()
    }
  })
}).listen(Number(port), '127.0.0.1')
process.on('SIGTERM', () => process.exit(0))
