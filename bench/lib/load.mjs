/**
 * Load generators behind one interface: wrk when installed (C, cheap on the shared CPU), autocannon
 * otherwise. Both return { requests, seconds, rps, p50Ms, p99Ms, errors }.
 */
import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { hasCommand, pinnedArgv } from './procs.mjs'

export const driverName = hasCommand('wrk') ? 'wrk' : 'autocannon'

/**
 * @param {object} o
 * @param {string} o.url
 * @param {number} o.connections
 * @param {number} o.seconds
 * @param {{ method?: string, bodyBytes?: number, body?: string, headers?: Record<string,string>, uniqueKeyHeader?: string }} o.request
 * @param {string} o.tmp a scratch directory
 */
export function runLoad (o) {
  return driverName === 'wrk' ? runWrk(o) : runAutocannon(o)
}

function luaString (s) { return JSON.stringify(s) }

function wrkScript (req) {
  const lines = []
  if (req.method) lines.push(`wrk.method = ${luaString(req.method)}`)
  if (req.bodyBytes) lines.push(`wrk.body = string.rep("x", ${req.bodyBytes})`)
  if (req.body !== undefined) lines.push(`wrk.body = ${luaString(req.body)}`)
  for (const [k, v] of Object.entries(req.headers ?? {})) lines.push(`wrk.headers[${luaString(k)}] = ${luaString(v)}`)
  if (req.uniqueKeyHeader) {
    // a fresh key per request: first executions only
    lines.push(`local n = 0`, `local prefix = ${luaString(`${Date.now()}-${process.pid}-`)}`,
      `request = function() n = n + 1; wrk.headers[${luaString(req.uniqueKeyHeader)}] = prefix .. n; return wrk.format() end`)
  }
  lines.push(`done = function(s, latency, requests)
  local e = s.errors
  io.write(string.format('WRKJSON {"requests":%d,"durationUs":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50":%d,"p99":%d}\\n',
    s.requests, s.duration, e.connect, e.read, e.write, e.status, e.timeout, latency:percentile(50), latency:percentile(99)))
end`)
  return lines.join('\n') + '\n'
}

function runWrk ({ url, connections, seconds, request = {}, tmp }) {
  const script = join(tmp, `wrk-${Math.random().toString(36).slice(2)}.lua`)
  writeFileSync(script, wrkScript(request))
  const args = ['-t1', `-c${connections}`, `-d${seconds}s`, '--timeout', '10s', '-s', script, url]
  const [file, ...argv] = pinnedArgv('rest', 'wrk', args)
  return new Promise((resolve, reject) => {
    const p = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    p.stdout.on('data', (d) => { out += d })
    p.stderr.on('data', (d) => { out += d })
    p.once('error', reject)
    p.once('exit', (code) => {
      const m = out.match(/WRKJSON (\{.*\})/)
      if (!m) return reject(new Error(`wrk failed (exit ${code}): ${out.slice(-500)}`))
      const r = JSON.parse(m[1])
      const secs = r.durationUs / 1e6
      resolve({
        requests: r.requests,
        seconds: secs,
        rps: r.requests / secs,
        p50Ms: r.p50 / 1000,
        p99Ms: r.p99 / 1000,
        errors: r.connect + r.read + r.write + r.status + r.timeout,
      })
    })
  })
}

async function runAutocannon ({ url, connections, seconds, request = {} }) {
  const { default: autocannon } = await import('autocannon')
  const body = request.bodyBytes ? Buffer.alloc(request.bodyBytes, 'x') : request.body
  const prefix = `${Date.now()}-${process.pid}-`
  let n = 0
  const r = await autocannon({
    url,
    connections,
    duration: seconds,
    method: request.method ?? 'GET',
    headers: request.headers ?? {},
    body,
    ...(request.uniqueKeyHeader
      ? { requests: [{ setupRequest: (req) => ({ ...req, headers: { ...req.headers, [request.uniqueKeyHeader]: prefix + (++n) } }) }] }
      : {}),
  })
  return {
    requests: r.requests.total,
    seconds: r.duration,
    rps: r.requests.total / r.duration,
    p50Ms: r.latency.p50,
    p99Ms: r.latency.p99,
    errors: r.errors + r.timeouts + r.non2xx,
  }
}
