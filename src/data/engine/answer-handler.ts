/**
 * @module engine/answer-handler
 * Where an exchange (engine/exchange) delivers the events of its upstream's answer, as undici's
 * dispatch handlers: the head, each body chunk, the end, and the exchange's own end. Every request
 * shares the one CLIENT_ANSWER, which writes to the client; a feature that must see the answer (the
 * idempotency record, proxy/idempotency-gate) wraps it in a handler of its own that delegates. The
 * exchange knows of wrapping only by comparing its handler with CLIENT_ANSWER where a wrapped request
 * is treated as one that must not run twice (its body kept whole, never sent on a connection that may
 * be closing); an ordinary request pays a shared field and calls V8 inlines.
 *
 * Body chunks arrive here unframed: the exchange frames them (head, chunked coding) only when a handler
 * passes them on with `ex.sendBody`, so a wrapper holds back body bytes, never framing bytes.
 */

/** What a handler may do with its exchange. */
export interface AnswerTarget {
  /** one chunk of the answer's body to the client, the head first when it waits; false: backpressure */
  sendBody (chunk: Buffer): boolean
  /** the rest of the answer to the client (the head when nothing was written, the last chunk), then finish */
  endAnswer (): void
  /** leave the request deadline: the answer is all in, only its end is being written */
  leaveDeadline (): void
  /** its client: a wrapper corks the socket around what it releases, so it leaves in one write */
  readonly conn: { readonly socket: { cork (): void, uncork (): void } }
  /** the exchange has finished (answered, failed, or its client left) */
  readonly finished: boolean
}

export interface AnswerHandler {
  /** the client's request body is all in (called only on a wrapped handler: the plain path waits for nothing) */
  onRequestEnd (ex: AnswerTarget): void
  /** the final answer's status and llhttp's [name, value, …] list (its head is framed by the exchange) */
  onHeaders (ex: AnswerTarget, status: number, headers: readonly string[]): void
  /** one chunk of the body; false stops reading the upstream until the client drains */
  onData (ex: AnswerTarget, chunk: Buffer): boolean
  /** the upstream's answer is all in */
  onComplete (ex: AnswerTarget): void
  /**
   * The exchange finished (every way out: answered, failed, client gone, deadline). `mayHaveRun`: an
   * upstream may have acted on the request. After onComplete it is the answer's own end. Called only
   * on a wrapped handler, like onRequestEnd.
   */
  onEnd (ex: AnswerTarget, mayHaveRun: boolean): void
}

/** The plain path: straight to the client (the head waits for the first body byte, in the exchange). */
class ClientAnswer implements AnswerHandler {
  onRequestEnd (): void {}
  onHeaders (): void {}
  onData (ex: AnswerTarget, chunk: Buffer): boolean {
    return ex.sendBody(chunk)
  }

  onComplete (ex: AnswerTarget): void {
    ex.endAnswer()
  }

  onEnd (): void {}
}

/** the one handler of every request nothing wraps: shared, so an ordinary request allocates none */
export const CLIENT_ANSWER: AnswerHandler = new ClientAnswer()
