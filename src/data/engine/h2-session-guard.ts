/**
 * @module engine/h2-session-guard
 * Per-session bounds and error codes that nghttp2 (as node:http2 embeds it) does not give on its own:
 * the rapid reset allowance (CVE-2023-44487) and the GOAWAY code of a connection error.
 */
import http2, { type Http2Session } from 'node:http2'

const { NGHTTP2_ENHANCE_YOUR_CALM, NGHTTP2_STREAM_CLOSED, NGHTTP2_COMPRESSION_ERROR, NGHTTP2_FRAME_SIZE_ERROR,
  NGHTTP2_FLOW_CONTROL_ERROR, NGHTTP2_REFUSED_STREAM, NGHTTP2_PROTOCOL_ERROR, NGHTTP2_INTERNAL_ERROR } = http2.constants

/**
 * Streams a client may reset (RST_STREAM before its answer was sent whole) beyond the ones it let
 * finish, before its session is closed with GOAWAY(ENHANCE_YOUR_CALM): twice the concurrent streams,
 * so a browser cancelling a whole page of requests stays well inside it. nghttp2's own limit (a
 * burst of 1000, then 33 a second) lets a flood run four times as long.
 */
export const H2_RESET_ALLOWANCE = 256

/** nghttp2's library error codes (nghttp2.h), as node:http2 passes them in NghttpError.errno */
const LIB_TO_WIRE = new Map<number, number>([
  [-510, NGHTTP2_STREAM_CLOSED], // NGHTTP2_ERR_STREAM_CLOSED
  [-523, NGHTTP2_COMPRESSION_ERROR], // NGHTTP2_ERR_HEADER_COMP
  [-522, NGHTTP2_FRAME_SIZE_ERROR], // NGHTTP2_ERR_FRAME_SIZE_ERROR
  [-524, NGHTTP2_FLOW_CONTROL_ERROR], // NGHTTP2_ERR_FLOW_CONTROL
  [-533, NGHTTP2_REFUSED_STREAM], // NGHTTP2_ERR_REFUSED_STREAM
  [-505, NGHTTP2_PROTOCOL_ERROR], // NGHTTP2_ERR_PROTO
  [-531, NGHTTP2_PROTOCOL_ERROR], // NGHTTP2_ERR_HTTP_HEADER
  [-532, NGHTTP2_PROTOCOL_ERROR], // NGHTTP2_ERR_HTTP_MESSAGING
])

/**
 * The GOAWAY code for an error node:http2 destroys a session with. Node reports an invalid frame
 * nghttp2 found (a window overflow, a bad frame) to JavaScript before nghttp2 sends its own GOAWAY,
 * and its `destroy(err)` then sends INTERNAL_ERROR first; this is the code nghttp2 would have sent
 * (its get_error_code_from_lib_error_code), so the client learns what it did wrong (RFC 9113 §5.4.1).
 */
export function goawayCode (err: unknown): number {
  const errno = (err as { errno?: unknown } | null)?.errno
  return (typeof errno === 'number' ? LIB_TO_WIRE.get(errno) : undefined) ?? NGHTTP2_INTERNAL_ERROR
}

/** One session's count of streams reset before their answer, less the ones served whole. */
export class ResetBudget {
  private debt = 0

  constructor (private readonly session: Http2Session) {}

  /** a stream the client reset before its answer was whole: past the allowance the session ends */
  reset (): void {
    if (++this.debt <= H2_RESET_ALLOWANCE || this.session.destroyed) return
    this.session.destroy(new Error(`more than ${H2_RESET_ALLOWANCE} streams reset`), NGHTTP2_ENHANCE_YOUR_CALM)
  }

  /** a stream answered whole pays back one reset (no credit is kept for later resets) */
  served (): void {
    if (this.debt > 0) this.debt--
  }
}
