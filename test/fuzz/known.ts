/**
 * The leaks the fuzzer found, as fixed scenarios (its shrunk counterexamples, written out): they run
 * before the generated ones in every `npm test`, so each stays fixed once it is.
 */
import { requestSpec, type Scenario } from './scenario.js'

export const KNOWN: Array<{ name: string, scenario: Scenario }> = [
  {
    // the trailer section was parsed as the next request's head: the upstream got `GET /fz/~1~//fz/~2~/probe` with `x-trailer`
    name: 'request trailers leak into the next request on the same client connection',
    scenario: { conns: [{ version: '1.1', pipelined: false, probe: true, reqs: [requestSpec({ method: 'POST', body: { kind: 'chunked', data: 'b', trailers: [['x-trailer', 'v']] } })] }] },
  },
  {
    // the pooled upstream connection's parser kept the trailer fields and gave them to the next answer's head
    name: "an upstream's response trailers leak into another client's answer on the same pooled connection",
    scenario: {
      conns: [
        { version: '1.1', pipelined: false, probe: false, reqs: [requestSpec({ answer: { framing: 'chunked', body: 'a', trailers: [['Set-Cookie', 'sid=a']] } })] },
        { version: '1.1', pipelined: false, probe: true, reqs: [requestSpec()] },
      ],
    },
  },
  {
    // the same leftover reaches an HTTP/2 stream's answer (src/engine/h2 reads the exchange's HTTP/1.1 answer back)
    name: "an upstream's response trailers leak into an HTTP/2 client's answer",
    scenario: {
      conns: [
        { version: '1.1', pipelined: false, probe: false, reqs: [requestSpec({ answer: { framing: 'chunked', body: 'a', trailers: [['x-trailer', 't']] } })] },
        { version: '2', pipelined: false, probe: false, reqs: [requestSpec()] },
      ],
    },
  },
  {
    // on HTTP/2 the stream was reset (INTERNAL_ERROR) instead of answered
    name: 'a status below 100 is a 502 problem for an HTTP/2 client too',
    scenario: { conns: [{ version: '2', pipelined: false, probe: true, reqs: [requestSpec({ answer: { status: 99, body: 'x' } })] }] },
  },
  {
    // read as an interim answer: its body went to the client raw and every later answer shifted by one
    name: 'a status below 100 is a broken answer (502), not a desync of the client connection',
    scenario: { conns: [{ version: '1.1', pipelined: false, probe: true, reqs: [requestSpec({ answer: { status: 99, body: 'x' } }), requestSpec()] }] },
  },
  {
    // the extension-method re-parse only works at the start of a read: pipelined behind another request it was a 400
    name: 'an extension method pipelined behind another request is forwarded',
    scenario: { conns: [{ version: '1.1', pipelined: true, probe: true, reqs: [requestSpec(), requestSpec({ method: 'FOO' })] }] },
  },
]
