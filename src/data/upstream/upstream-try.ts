/**
 * @module engine/upstream-try
 * One attempt of an exchange (engine/exchange) on one upstream host, as Envoy's UpstreamRequest: made
 * in `Exchange.start()` for each try and dropped when the try ends, so nothing of a try can leak into
 * the next. It is plain state: its connection still calls back into the exchange (`c.user`), and the
 * exchange takes a callback as its current try's only when `c` is that try's connection.
 */
import type { Host } from './host.js'
import type { UpstreamConn } from './upstream-pool.js'

export class UpstreamTry {
  /** the host this try went to (released, and its outcome reported, when the try ends) */
  readonly host: Host
  /** its connection; callbacks from any other connection are stale */
  readonly up: UpstreamConn
  /** request bytes were written */
  sent = false
  /** the whole request was written */
  requestWritten = false
  /** how many of the exchange's kept body chunks this try has written */
  bodyWritten = 0
  /** the upstream answered a status of retry.onStatus: its body is dropped, then the request retried */
  discarding = false

  constructor (host: Host, up: UpstreamConn) {
    this.host = host
    this.up = up
  }
}
