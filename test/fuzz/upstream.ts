/**
 * The fuzzer's recording upstream, on raw `net` sockets: it parses every request strictly (test/fuzz/wire),
 * records it with the connection it came on, and answers with the script registered for the id its
 * target names, byte for byte (interim answers, odd statuses, any framing, trailers, an answer before
 * the body was read, a reset). A request it cannot parse is recorded as a parse error and the
 * connection closed: that too is something the proxy sent.
 */
import net from 'node:net'
import { answerBytes } from './bytes.js'
import { idOf, type AnswerSpec } from './scenario.js'
import { takeHead, takeMessage, WireError, type Message } from './wire.js'

export interface Received {
  /** upstream connection number (in accept order) */
  conn: number
  msg: Message
  /** the id its target names, if any */
  id: number | undefined
}

export interface Script {
  id: number
  answer: AnswerSpec
  /** deliveries so far (a reset applies to the first only) */
  deliveries: number
}

export class RecordingUpstream {
  readonly server: net.Server
  port = 0
  received: Received[] = []
  errors: string[] = []
  readonly scripts = new Map<number, Script>()
  private readonly sockets = new Set<net.Socket>()
  private conns = 0

  constructor () {
    this.server = net.createServer((s) => this.serve(s))
  }

  async listen (): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve))
    this.port = (this.server.address() as net.AddressInfo).port
  }

  /**
   * Close every connection and wait until each is closed on both sides, so the proxy has seen the end
   * of each pooled connection before the next run: no run inherits another's upstream state.
   */
  async closeAll (): Promise<void> {
    const closing = [...this.sockets].map((s) => new Promise<void>((resolve) => {
      if (s.destroyed) return resolve()
      s.once('close', () => resolve())
      s.end()
      // a proxy that never closes its side is cut (the hang guard, not a wait)
      setTimeout(() => s.destroy(), 5000).unref()
    }))
    await Promise.all(closing)
  }

  async close (): Promise<void> {
    for (const s of this.sockets) s.destroy()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }

  private serve (s: net.Socket): void {
    const conn = this.conns++
    this.sockets.add(s)
    s.on('close', () => this.sockets.delete(s))
    s.on('error', () => {})
    s.setEncoding('latin1')
    let buf = ''
    /** the request being read was answered early (after its head) */
    let answered = false
    s.on('data', (d: string) => {
      buf += d
      try {
        for (;;) {
          if (s.destroyed) return
          if (!answered) {
            const head = takeHead(buf)
            if (head === undefined) return
            const script = this.scriptFor(head.start.split(' ')[1] ?? '')
            if (script?.answer.early === true && !(script.answer.reset && script.deliveries === 0)) {
              answered = true
              this.answer(s, script, head.start.startsWith('HEAD '))
              if (s.destroyed || !s.writable) return
            }
          }
          const taken = takeMessage(buf, 'request')
          if (taken === undefined) return
          buf = taken.rest
          const id = idOf(taken.msg.target)
          this.received.push({ conn, msg: taken.msg, id })
          const script = this.scriptFor(taken.msg.target)
          const wasAnswered = answered
          answered = false
          if (script === undefined) {
            s.write(`HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\nunknown`)
            continue
          }
          const first = script.deliveries === 0
          script.deliveries++
          if (script.answer.reset && first) {
            s.resetAndDestroy()
            return
          }
          if (!wasAnswered) this.answer(s, script, taken.msg.method === 'HEAD')
        }
      } catch (err) {
        if (!(err instanceof WireError)) throw err
        this.errors.push(`upstream connection ${conn}: ${err.message}`)
        s.destroy()
      }
    })
  }

  private scriptFor (target: string): Script | undefined {
    const id = idOf(target)
    return id === undefined ? undefined : this.scripts.get(id)
  }

  private answer (s: net.Socket, script: Script, head: boolean): void {
    const { bytes, close } = answerBytes(script.answer, script.id, head)
    s.write(bytes, 'latin1')
    if (close) s.end()
  }
}
