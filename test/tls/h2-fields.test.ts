/**
 * The HTTP/2 field checks claylb makes itself (src/data/http/h2-fields.ts) and the GOAWAY code it gives
 * a session error (src/data/engine/h2-session-guard.ts), against oracles over generated input.
 */
import t from 'tap'
import fc from 'fast-check'
import http2 from 'node:http2'
import { hasFlankedValue } from '../../src/data/http/h2-fields.js'
import { goawayCode } from '../../src/data/engine/h2-session-guard.js'

t.test('hasFlankedValue: true exactly when some value starts or ends with SP or HTAB (names are not values)', async (t) => {
  const text = fc.string({ unit: fc.constantFrom('a', 'b', ' ', '\t', '\r', 'x', '-', '\u00a0'), maxLength: 6 })
  fc.assert(fc.property(fc.array(fc.tuple(text, text), { maxLength: 5 }), (pairs) => {
    const raw = pairs.flat()
    const oracle = pairs.some(([, v]) => /^[ \t]|[ \t]$/.test(v))
    return hasFlankedValue(raw) === oracle
  }), { numRuns: 2000 })
  t.pass('2000 generated header lists agree with the oracle')
})

t.test("goawayCode: nghttp2's lib error codes map as its get_error_code_from_lib_error_code, anything else INTERNAL_ERROR", async (t) => {
  const c = http2.constants
  const err = (errno: number): Error => Object.assign(new Error('x'), { errno })
  t.equal(goawayCode(err(-524)), c.NGHTTP2_FLOW_CONTROL_ERROR, 'ERR_FLOW_CONTROL')
  t.equal(goawayCode(err(-510)), c.NGHTTP2_STREAM_CLOSED, 'ERR_STREAM_CLOSED')
  t.equal(goawayCode(err(-505)), c.NGHTTP2_PROTOCOL_ERROR, 'ERR_PROTO')
  t.equal(goawayCode(err(-523)), c.NGHTTP2_COMPRESSION_ERROR, 'ERR_HEADER_COMP')
  t.equal(goawayCode(err(-522)), c.NGHTTP2_FRAME_SIZE_ERROR, 'ERR_FRAME_SIZE_ERROR')
  t.equal(goawayCode(err(-902)), c.NGHTTP2_INTERNAL_ERROR, 'ERR_CALLBACK_FAILURE')
  t.equal(goawayCode(new Error('no errno')), c.NGHTTP2_INTERNAL_ERROR, 'an error without errno')
})
