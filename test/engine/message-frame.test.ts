/**
 * engine/llhttp's MessageFrame against an oracle: any sequence of requests (or responses) — heads of
 * 0 to 70 fields (llhttp flushes 32+ in pieces), bodies by length or chunked with 0 to 40 trailer
 * fields — cut into reads at any points, reaches the callbacks as exactly those messages: each head
 * and target its own, each trailer section as trailers of its own message, never as headers, never
 * in another message.
 */
import t from 'tap'
import fc from 'fast-check'
import { createParser, releaseParser, type Parser, type ParserCallbacks } from '../../src/data/http/llhttp.js'

interface Msg { target: string, fields: Array<[string, string]>, body: string, chunked: boolean, trailers: Array<[string, string]> }

const field = fc.tuple(fc.stringMatching(/^[A-Za-z][A-Za-z0-9-]{0,11}$/), fc.stringMatching(/^[!-~]{0,12}$/))
  // framing is the oracle's own to write
  .filter(([n]) => !/^(content-length|transfer-encoding|connection|upgrade)$/i.test(n))
const msg: fc.Arbitrary<Msg> = fc.record({
  target: fc.stringMatching(/^\/[a-z0-9/]{0,20}$/),
  fields: fc.array(field, { maxLength: 70 }),
  body: fc.stringMatching(/^[a-z]{0,20}$/),
  chunked: fc.boolean(),
  trailers: fc.array(field, { maxLength: 40 }),
})

function wire (kind: 'request' | 'response', m: Msg): string {
  let s = kind === 'request' ? `POST ${m.target} HTTP/1.1\r\n` : 'HTTP/1.1 200 OK\r\n'
  for (const [n, v] of m.fields) s += `${n}: ${v}\r\n`
  if (!m.chunked) return `${s}Content-Length: ${m.body.length}\r\n\r\n${m.body}`
  s += 'Transfer-Encoding: chunked\r\n\r\n'
  if (m.body !== '') s += `${m.body.length.toString(16)}\r\n${m.body}\r\n`
  s += '0\r\n'
  for (const [n, v] of m.trailers) s += `${n}: ${v}\r\n`
  return `${s}\r\n`
}

/** what the callbacks should see of `m` */
function expected (kind: 'request' | 'response', m: Msg): string {
  const head = m.fields.flat()
  head.push(...(m.chunked ? ['Transfer-Encoding', 'chunked'] : ['Content-Length', String(m.body.length)]))
  const trailers = m.chunked && m.trailers.length > 0 ? [`trailers ${JSON.stringify(m.trailers.flat())}`] : []
  return [`head ${kind === 'request' ? m.target : ''} ${JSON.stringify(head)}`, `body ${m.body}`, ...trailers, 'end'].join('\n')
}

/** callbacks that write each whole message as `expected` does */
function recorder (): { cb: ParserCallbacks, seen: string[] } {
  const seen: string[] = []
  let body = ''
  let current: string[] = []
  const cb: ParserCallbacks = {
    onHeadersComplete (_maj, _min, headers, _method, url) {
      current = [`head ${url} ${JSON.stringify(headers)}`]
      body = ''
      return 0
    },
    onTrailers (trailers) { current.push(`body ${body}`, `trailers ${JSON.stringify(trailers)}`); body = '\0' },
    onBody (chunk) { body += chunk.toString('latin1') },
    onMessageComplete () {
      if (body !== '\0') current.push(`body ${body}`)
      current.push('end')
      seen.push(current.join('\n'))
    },
    onExecute () {},
  }
  return { cb, seen }
}

function feed (p: Parser, all: Buffer, cuts: number[]): void {
  const at = [...new Set(cuts.map((c) => c % (all.length + 1)))].sort((a, b) => a - b)
  let from = 0
  for (const to of [...at, all.length]) {
    const r = p.execute(all.subarray(from, to))
    if (typeof r !== 'number') throw r
    from = to
  }
}

const wireOf = (kind: 'request' | 'response', msgs: Msg[]): Buffer => Buffer.from(msgs.map((m) => wire(kind, m)).join(''), 'latin1')

function same (seen: string[], want: string[]): void {
  if (JSON.stringify(seen) !== JSON.stringify(want)) throw new Error(`got\n${seen.join('\n--\n')}\nwant\n${want.join('\n--\n')}`)
}

for (const kind of ['request', 'response'] as const) {
  t.test(`${kind}s: every head, body and trailer section reaches the callbacks as its own message's`, async (t) => {
    fc.assert(fc.property(fc.array(msg, { minLength: 1, maxLength: 6 }), fc.array(fc.nat(), { maxLength: 8 }), (msgs, cuts) => {
      const { cb, seen } = recorder()
      const p = createParser(kind, 1 << 20, cb)
      feed(p, wireOf(kind, msgs), cuts)
      p.close()
      same(seen, msgs.map((m) => expected(kind, m)))
    }), { numRuns: 300 })
    t.pass('300 random sequences, cut at random points')
  })

  // parsers are pooled (node:http's FreeList): one given back in the middle of anything (a head
  // flushed in pieces, a body, trailers) serves the next connection as if new, and tells the one it
  // served nothing more
  t.test(`${kind}s: a pooled parser given back mid-message parses the next connection's messages as a new one`, async (t) => {
    fc.assert(fc.property(fc.array(msg, { minLength: 1, maxLength: 3 }), fc.nat(), fc.array(msg, { minLength: 1, maxLength: 3 }), fc.array(fc.nat(), { maxLength: 6 }),
      (before, cut, after, cuts) => {
        const first = recorder()
        const p = createParser(kind, 1 << 20, first.cb)
        const old = wireOf(kind, before)
        feed(p, old.subarray(0, cut % (old.length + 1)), cuts)
        const heard = first.seen.length
        releaseParser(p)
        const next = recorder()
        const q = createParser(kind, 1 << 20, next.cb)
        if (q !== p) throw new Error('the parser given back was not reused')
        feed(q, wireOf(kind, after), cuts)
        releaseParser(q)
        same(next.seen, after.map((m) => expected(kind, m)))
        if (first.seen.length !== heard) throw new Error('a parser given back still called its old connection')
      }), { numRuns: 300 })
    t.pass('300 random pairs, the first cut anywhere')
  })
}
