// http-proxy (node-http-proxy 1.18.1), round-robin across the backends.
// usage: node http-proxy.mjs PORT [--agent] UPSTREAM_URL...
// Without --agent it runs as most people run it (no agent: a new upstream connection per request);
// with --agent it reuses upstream connections through a keep-alive http.Agent.
import http from 'node:http'
import httpProxy from 'http-proxy'

const args = process.argv.slice(2)
const port = Number(args.shift())
const withAgent = args[0] === '--agent'
if (withAgent) args.shift()
const targets = args
const agent = withAgent ? new http.Agent({ keepAlive: true, maxSockets: 256 }) : undefined
const proxy = httpProxy.createProxyServer(agent ? { agent } : {})
proxy.on('error', (_err, _req, res) => {
  if (res.writeHead && !res.headersSent) res.writeHead(502)
  res.end()
})
let next = 0
http.createServer((req, res) => {
  const target = targets[next]
  next = (next + 1) % targets.length
  proxy.web(req, res, { target })
}).listen(port, '127.0.0.1')
process.on('SIGTERM', () => process.exit(0))
