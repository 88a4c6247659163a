/**
 * Raw upstreams, for what node:http will not do on cue: reset, FIN or close a connection at a chosen
 * moment, run a request and die before answering. `listenRaw` serves each connection with a handler
 * (and destroys them all on close); `readRequests` calls back once per complete request.
 */
import net, { type AddressInfo, type ServerOpts, type Socket } from 'node:net'

export interface RawUpstream {
  url: string
  /** connections open now */
  readonly sockets: Set<Socket>
  close (): Promise<void>
}

export async function listenRaw (onConnection: (s: Socket) => void, opts: ServerOpts = {}): Promise<RawUpstream> {
  const sockets = new Set<Socket>()
  const server = net.createServer(opts, (s) => {
    sockets.add(s)
    s.on('error', () => s.destroy()).on('close', () => sockets.delete(s))
    onConnection(s)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    sockets,
    close: () => new Promise<void>((resolve) => { for (const s of sockets) s.destroy(); server.close(() => resolve()) }),
  }
}

/**
 * Calls `onHead` once a request's head is in (return false to read no further: the body stays
 * unread), then `whole` once its Content-Length body is all in, for each request on the socket.
 */
export function readRequests (s: Socket, whole: (head: string) => void, onHead: (head: string) => boolean = () => true): void {
  let got = ''
  let headSeen = false
  s.on('data', (d: Buffer) => {
    got += d.toString('latin1')
    for (;;) {
      const end = got.indexOf('\r\n\r\n')
      if (end < 0) return
      const head = got.slice(0, end)
      if (!headSeen) {
        headSeen = true
        if (!onHead(head)) return
      }
      const len = end + 4 + Number(headerOf(head, 'content-length') ?? 0)
      if (got.length < len) return
      got = got.slice(len)
      headSeen = false
      whole(head)
      if (s.destroyed) return
    }
  })
}

/** a header's value in a raw head */
export function headerOf (head: string, name: string): string | undefined {
  return new RegExp(`^${name}: *(\\S+)`, 'im').exec(head)?.[1]
}
