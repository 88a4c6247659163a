/**
 * How the adversarial suite reaches claylb: plain TCP, or — with CLAYLB_TEST_TLS=1, set by
 * test/adversarial/over-tls/ — the TLS listener (listen.tls with listen.http2 on, so HTTP/1.1
 * is chosen by ALPN on a port that offers h2 too). The same tests, byte for byte, inside TLS.
 */
import net from 'node:net'
import tls from 'node:tls'
import { Pki } from './pki.js'

export const overTls = process.env['CLAYLB_TEST_TLS'] === '1'

let leaf: { cert: string, key: string } | undefined

/** the listen section a test's claylb gets (empty for plain TCP) */
export function listenConfig (): Record<string, unknown> {
  if (!overTls) return {}
  leaf ??= new Pki().issue(['a.test'])
  return { listen: { http2: true, tls: { cert: leaf.cert, key: leaf.key } } }
}

/**
 * A client connection: `socket` carries the bytes (a TLSSocket over TLS), `raw` is the TCP socket
 * under it (for a RST), `ready` the event after which bytes may be written.
 */
export function openClient (port: number): { socket: net.Socket, raw: net.Socket, ready: 'connect' | 'secureConnect' } {
  const raw = net.connect(port, '127.0.0.1')
  if (!overTls) return { socket: raw, raw, ready: 'connect' }
  const socket = tls.connect({ socket: raw, servername: 'a.test', rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] })
  return { socket, raw, ready: 'secureConnect' }
}
