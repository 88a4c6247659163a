// A minimal node:http backend: reads (and drops) any request body, answers a small JSON body.
// usage: node backend.mjs PORT [ID]
import http from 'node:http'

const port = Number(process.argv[2])
const id = process.argv[3] ?? String(port)
const GET_BODY = Buffer.from(`{"ok":true,"backend":"${id}"}`)

function answer (req, res) {
  const created = req.method === 'POST' && req.url.startsWith('/orders')
  res.writeHead(created ? 201 : 200, { 'content-type': 'application/json', 'content-length': GET_BODY.length })
  res.end(GET_BODY)
}

const server = http.createServer((req, res) => {
  if (req.method === 'GET' || req.method === 'HEAD') return answer(req, res)
  req.on('data', () => {})
  req.on('end', () => answer(req, res))
})
// longer than every proxy's upstream idle timeout, so no proxy races a backend's close
server.keepAliveTimeout = 65_000
server.listen(port, '127.0.0.1')
process.on('SIGTERM', () => process.exit(0))
