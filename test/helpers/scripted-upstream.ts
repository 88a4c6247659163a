/**
 * An upstream that reads each request whole (its head, then its body by Content-Length or chunked,
 * trailers included) and answers it with exact bytes a script picks from the request: the answers an
 * http.Server would never write (a status below 100, trailers naming framing headers, 1xx with a
 * length, a 101 nobody asked for). It records every request with the connection it came on, so a
 * test can tell a pooled connection's reuse from a new one.
 */
import { listenRaw } from './backend.js'

export interface ScriptedRequest {
  /** the upstream connection it came on, numbered from 0 in accept order */
  conn: number
  /** request line and header lines, as received (latin1), without the blank line */
  head: string
  method: string
  target: string
  /** the body, de-chunked */
  body: string
  /** the trailer section of a chunked body, as received ('' when none) */
  trailers: string
}

export interface ScriptedUpstream {
  url: string
  port: number
  requests: ScriptedRequest[]
  /** connections accepted so far */
  connections: number
  close (): Promise<void>
}

/** One request off the front of `buf`, or undefined while it is incomplete. */
function takeRequest (buf: string, conn: number): { req: ScriptedRequest, rest: string } | undefined {
  const end = buf.indexOf('\r\n\r\n')
  if (end < 0) return undefined
  const head = buf.slice(0, end)
  const [line, ...fields] = head.split('\r\n')
  const [method = '', target = ''] = line!.split(' ')
  let length = 0
  let chunked = false
  for (const f of fields) {
    const i = f.indexOf(':')
    const name = f.slice(0, i).trim().toLowerCase()
    const value = f.slice(i + 1).trim()
    if (name === 'content-length') length = Number(value)
    if (name === 'transfer-encoding') chunked = value.toLowerCase() === 'chunked'
  }
  let at = end + 4
  const req = { conn, head, method, target, body: '', trailers: '' }
  if (!chunked) {
    if (buf.length < at + length) return undefined
    req.body = buf.slice(at, at + length)
    return { req, rest: buf.slice(at + length) }
  }
  for (;;) {
    const eol = buf.indexOf('\r\n', at)
    if (eol < 0) return undefined
    const size = parseInt(buf.slice(at, eol), 16)
    if (size === 0) {
      // the trailer section: field lines up to an empty line
      const tEnd = buf.indexOf('\r\n\r\n', eol)
      if (buf.startsWith('\r\n\r\n', eol)) return { req, rest: buf.slice(eol + 4) }
      if (tEnd < 0) return undefined
      req.trailers = buf.slice(eol + 2, tEnd)
      return { req, rest: buf.slice(tEnd + 4) }
    }
    if (buf.length < eol + 2 + size + 2) return undefined
    req.body += buf.slice(eol + 2, eol + 2 + size)
    at = eol + 2 + size + 2
  }
}

export async function startScriptedUpstream (answer: (req: ScriptedRequest) => string): Promise<ScriptedUpstream> {
  const up = { requests: [], connections: 0 } as unknown as ScriptedUpstream
  const l = await listenRaw((s) => {
    const conn = up.connections++
    let buf = ''
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1')
      for (let r = takeRequest(buf, conn); r !== undefined; r = takeRequest(buf, conn)) {
        buf = r.rest
        up.requests.push(r.req)
        s.write(Buffer.from(answer(r.req), 'latin1'))
      }
    })
  })
  return Object.assign(up, l)
}
