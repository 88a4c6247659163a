/**
 * @module data/observe/log-sink
 * Where access log lines go: stdout, or a file (`log.access.path`). Lines are copied as latin1 (the
 * bytes of a path as they came) into a 4 KB Buffer batch; a full batch (or, once a second, what there
 * is) is written with ONE asynchronous `fs.write` of whole lines, one write at a time, so a slow or
 * blocked reader costs the request path nothing: batches queue up to MAX_PENDING_BYTES, then lines
 * are dropped and counted.
 *
 * Several processes share the destination. On a pipe a write of at most PIPE_BUF (4096) bytes is
 * atomic; a file is opened O_APPEND, where each write lands whole at the end: either way the lines of
 * two processes never cut into each other. `reopen()` (SIGUSR1, after logrotate renamed the file)
 * opens the path anew; what is written from then on goes to the new file, a write already under way
 * finishes into the old one, which is closed after it.
 */
import fs from 'node:fs'

const BATCH_BYTES = 4096
/** at most this much waits for the destination; past it lines are dropped (and counted) */
const MAX_PENDING_BYTES = 4 * 1024 * 1024

export interface LineSink {
  /** one or more whole lines, each ending in \n */
  write (lines: string): void
  /** the same, as the first `length` bytes of `buf` (copied: the caller reuses it) */
  writeBytes (buf: Buffer, length: number): void
  /**
   * Write out what is buffered (on shutdown): synchronously, unless a batch is still being written;
   * then the rest follows it, in order, as soon as it is done. Resolves once every line is written.
   */
  flush (): Promise<void>
  /** a file destination: open the path again (the old file was renamed) */
  reopen (): void
  /** lines dropped because the destination did not keep up */
  readonly dropped: number
}

/** `dest`: a file path, appended to (made when missing), or an open fd (1: stdout) */
export function createLineSink (dest: string | number = 1): LineSink {
  const path = typeof dest === 'string' ? dest : undefined
  const open = (): number => fs.openSync(path!, 'a', 0o644)
  let fd = path === undefined ? dest as number : open()
  /** an fd replaced by reopen() while a write to it was under way: closed when that write ends */
  let retired = -1
  let batch = Buffer.allocUnsafe(BATCH_BYTES)
  let used = 0
  const queue: Buffer[] = []
  let pendingBytes = 0
  let writing = false
  let dropped = 0
  let current: Buffer | null = null
  /** set by flush() while a batch was in flight: the rest is written right after it, synchronously */
  let flushed: (() => void) | null = null
  const writeRest = (): void => {
    const rest = Buffer.concat(queue)
    queue.length = 0
    pendingBytes = 0
    if (rest.length > 0) try { fs.writeSync(fd, rest) } catch { /* destination gone: drop the lines */ }
  }
  const closeRetired = (): void => {
    if (retired < 0) return
    try { fs.closeSync(retired) } catch { /* already gone */ }
    retired = -1
  }
  const written = (err: NodeJS.ErrnoException | null, bytes?: number): void => {
    writing = false
    closeRetired()
    const out = current!
    current = null
    if (flushed !== null) {
      // flush() came while this batch was being written: what it did not take, then the rest, in order
      if (err === null && bytes !== undefined && bytes < out.length) queue.unshift(out.subarray(bytes))
      if (err === null || err.code === 'EAGAIN') writeRest()
      const done = flushed
      flushed = null
      done()
      return
    }
    if (err?.code === 'EAGAIN' || (err === null && bytes !== undefined && bytes < out.length)) {
      // a non-blocking stdout that is full (or took part of the batch): try the rest again shortly
      const rest = err === null ? out.subarray(bytes) : out
      queue.unshift(rest)
      pendingBytes += rest.length
      writing = true
      setTimeout(() => { writing = false; next() }, 10).unref()
      return
    }
    if (err) { // destination gone: drop what waits
      queue.length = 0
      pendingBytes = 0
      return
    }
    next()
  }
  const next = (): void => {
    const out = queue.shift()
    if (out === undefined) return
    pendingBytes -= out.length
    current = out
    writing = true
    fs.write(fd, out, 0, out.length, null, written)
  }
  const enqueue = (b: Buffer): void => {
    if (pendingBytes + b.length > MAX_PENDING_BYTES) {
      for (let i = b.indexOf(10); i >= 0; i = b.indexOf(10, i + 1)) dropped++
      return
    }
    queue.push(b)
    pendingBytes += b.length
    if (!writing) next()
  }
  const push = (): void => {
    if (used === 0) return
    const full = batch.subarray(0, used)
    batch = Buffer.allocUnsafe(BATCH_BYTES)
    used = 0
    enqueue(full)
  }
  const timer = setInterval(push, 1000)
  timer.unref()
  return {
    write (lines) {
      if (used + lines.length > BATCH_BYTES) {
        push()
        if (lines.length > BATCH_BYTES) { // a line longer than a batch (a huge path) goes alone
          enqueue(Buffer.from(lines, 'latin1'))
          return
        }
      }
      used += batch.write(lines, used, 'latin1')
    },
    writeBytes (buf, length) {
      if (used + length > BATCH_BYTES) {
        push()
        if (length > BATCH_BYTES) {
          enqueue(Buffer.from(buf.subarray(0, length)))
          return
        }
      }
      used += buf.copy(batch, used, 0, length)
    },
    flush () {
      clearInterval(timer)
      // the open batch joins the queue without starting an asynchronous write: all of it goes now
      if (used > 0) {
        queue.push(batch.subarray(0, used))
        used = 0
      }
      // a batch still being written lands first (before, the rest was written at once and that batch
      // landed after it, or never with a process that exits: lines lost, out of order)
      if (writing) return new Promise((resolve) => { flushed = resolve })
      writeRest()
      return Promise.resolve()
    },
    reopen () {
      if (path === undefined) return
      let next: number
      try { next = open() } catch { return } // keep writing where we were rather than lose lines
      // what is batched belongs to the time before the signal: it goes out first, to the old file
      push()
      const old = fd
      fd = next
      if (writing && current !== null) {
        // the write under way goes to the old file; queued batches follow to the new one
        closeRetired()
        retired = old
      } else {
        try { fs.closeSync(old) } catch { /* already gone */ }
      }
    },
    get dropped () { return dropped },
  }
}
