/**
 * TLS session resumption is on by default: a client that comes back with the ticket of an earlier
 * connection resumes (no certificate signature, no full key exchange), whichever proxy process the
 * kernel or the primary gives its new connection to. The proxy processes serve with the primary's
 * ticket keys; with keys of their own, a ticket resumed only on the process that issued it.
 */
import t from 'tap'
import tls from 'node:tls'
import { startBackend, type Backend } from '../helpers/backend.js'
import { startClaylb } from '../helpers/claylb.js'
import { Pki } from '../helpers/pki.js'

const pki = new Pki()
const leaf = pki.issue(['a.test'])
const backend: Backend = await startBackend()
t.teardown(() => backend.close())

/** one request on a new connection offering `session`; resolves whether it resumed and the ticket it got */
function get (port: number, session: Buffer | undefined): Promise<{ reused: boolean, session: Buffer | undefined, head: string }> {
  return new Promise((resolve, reject) => {
    let next: Buffer | undefined
    let body = ''
    const s = tls.connect({ port, host: '127.0.0.1', servername: 'a.test', ca: pki.caPem, session, minVersion: 'TLSv1.3' }, () => {
      s.write('GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n')
    })
    // TLS 1.3 tickets arrive after the handshake
    s.on('session', (b: Buffer) => { next = b })
    s.setEncoding('latin1')
    s.on('data', (d: string) => { body += d })
    s.on('end', () => resolve({ reused: s.isSessionReused(), session: next, head: body.slice(0, body.indexOf('\r\n')) }))
    s.on('error', reject)
  })
}

for (const processes of [1, 3]) {
  t.test(`processes: ${processes}: every connection offering an earlier ticket resumes`, async (t) => {
    const lb = await startClaylb({
      args: ['--upstream', backend.url],
      config: { listen: { processes, tls: { cert: leaf.cert, key: leaf.key } }, log: { access: false } },
    })
    t.teardown(() => lb.stop('SIGKILL'))
    const port = Number(new URL(lb.url).port)
    const first = await get(port, undefined)
    t.equal(first.head, 'HTTP/1.1 200 OK')
    t.equal(first.reused, false, 'the first connection makes a full handshake')
    t.ok(first.session, 'the first connection got a session ticket')
    let session = first.session
    const missed: number[] = []
    // more connections than processes, each offering the last ticket: the kernel or the primary spreads them
    for (let i = 0; i < 8 * processes; i++) {
      const r = await get(port, session)
      t.equal(r.head, 'HTTP/1.1 200 OK')
      if (!r.reused) missed.push(i)
      session = r.session ?? session
    }
    t.same(missed, [], 'no connection fell back to a full handshake')
  })
}
