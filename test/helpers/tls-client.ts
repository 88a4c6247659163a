/**
 * Clients for the TLS listener: the certificate a handshake got, HTTP/1.1 over TLS (node:https) and
 * HTTP/2 (node:http2), each naming the server by SNI while connecting to 127.0.0.1.
 */
import { spawn } from 'node:child_process'
import http2, { type ClientHttp2Session } from 'node:http2'
import https from 'node:https'
import tls from 'node:tls'

export interface TlsReply { status: number, headers: Record<string, string | string[] | undefined>, body: string, reusedSocket?: boolean }

/** The serial of the certificate the listener served for `servername` ('' sends no SNI). */
export function peerSerial (port: number, servername: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...(servername === '' ? {} : { servername }), ALPNProtocols: ['http/1.1'] }, () => {
      const serial = s.getPeerCertificate().serialNumber
      s.destroy()
      resolve(serial)
    })
    s.once('error', reject)
  })
}

/** One HTTP/1.1 request over TLS; `agent` to keep the connection for the next one. */
export function h1 (port: number, o: { servername: string, ca: string, path?: string, method?: string, body?: string, agent?: https.Agent, headers?: Record<string, string> }): Promise<TlsReply> {
  return new Promise((resolve, reject) => {
    const r = https.request({ host: '127.0.0.1', port, servername: o.servername, ca: o.ca, path: o.path ?? '/', method: o.method ?? 'GET',
      headers: { host: o.servername, ...o.headers }, agent: o.agent ?? false }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => { body += d })
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body, reusedSocket: r.reusedSocket }))
      res.on('error', reject)
    })
    r.on('error', reject)
    r.end(o.body)
  })
}

export function h2session (port: number, servername: string, ca: string): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const s = http2.connect(`https://${servername}:${port}`, { ca, servername, host: '127.0.0.1', lookup: (_h, _o, cb) => (cb as (e: null, a: string, f: number) => void)(null, '127.0.0.1', 4) } as http2.SecureClientSessionOptions)
    s.once('connect', () => { s.off('error', reject); resolve(s) })
    s.once('error', reject)
  })
}

/** One HTTP/2 request on `s`. */
export function h2 (s: ClientHttp2Session, o: { path?: string, method?: string, body?: string | Buffer, headers?: http2.OutgoingHttpHeaders } = {}): Promise<TlsReply> {
  return new Promise((resolve, reject) => {
    const r = s.request({ ':path': o.path ?? '/', ':method': o.method ?? 'GET', ...o.headers }, { endStream: o.body === undefined })
    let status = 0
    let headers: Record<string, string | string[] | undefined> = {}
    let body = ''
    r.setEncoding('utf8')
    r.on('response', (h) => { status = Number(h[':status']); headers = h as typeof headers })
    r.on('data', (d: string) => { body += d })
    r.on('end', () => resolve({ status, headers, body }))
    r.on('error', reject)
    if (o.body !== undefined) r.end(o.body)
  })
}

/**
 * curl (Debian package `curl`), failing clearly when it is missing; stdout and the exit status. Run
 * asynchronously: the backends it reaches through claylb may live in this process.
 */
export function curl (args: string[]): Promise<{ status: number | null, out: string, err: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn('curl', ['-sS', '--max-time', '20', ...args])
    let out = ''
    let err = ''
    p.stdout.setEncoding('utf8').on('data', (d: string) => { out += d })
    p.stderr.setEncoding('utf8').on('data', (d: string) => { err += d })
    p.on('error', (e) => reject(new Error(`the tests need curl (Debian package "curl"): ${e.message}`)))
    p.on('close', (status) => resolve({ status, out, err }))
  })
}
