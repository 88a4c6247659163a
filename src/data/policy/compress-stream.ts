/**
 * @module data/policy/compress-stream
 * One answer's body through Node's zlib (gzip or brotli), streamed: each chunk from the upstream is
 * written in, whatever zlib gives out goes to the client as it comes. Backpressure both ways: a full
 * zlib input pauses the upstream (write returns false, 'drain' resumes it), a client that reads
 * slowly pauses zlib's output (the caller resumes it on the client's drain). Each chunk is flushed
 * (a sync flush: the dictionary is kept, so the ratio barely moves), as Envoy's compressor does: what
 * the upstream sent reaches the client now, so a streamed answer (NDJSON, a long poll) is not held back
 * until zlib has a block's worth.
 */
import { constants, createBrotliCompress, createGzip, type BrotliCompress, type Gzip } from 'node:zlib'
import type { Algorithm, Compression } from './compression.js'
import { policyTally } from './tally.js'

/** where the compressed bytes go (the exchange) */
export interface CompressedOut {
  /** one compressed chunk to the client; false: the client is behind */
  sendOut (chunk: Buffer): boolean
  /** zlib took what it held: the upstream may send more */
  compressorDrained (): void
  /** the last compressed byte was sent */
  compressedEnd (): void
  /** zlib failed (out of memory): the answer cannot be completed */
  compressorFailed (err: Error): void
}

export class CompressStream {
  private readonly z: Gzip | BrotliCompress
  private readonly algorithm: Algorithm
  /** Z_SYNC_FLUSH or BROTLI_OPERATION_FLUSH */
  private readonly flushKind: number
  private closed = false

  constructor (algorithm: Algorithm, c: Compression, out: CompressedOut) {
    this.algorithm = algorithm
    this.flushKind = algorithm === 'gzip' ? constants.Z_SYNC_FLUSH : constants.BROTLI_OPERATION_FLUSH
    this.z = algorithm === 'gzip'
      ? createGzip({ level: c.gzipLevel })
      : createBrotliCompress({ params: { [constants.BROTLI_PARAM_QUALITY]: c.brotliQuality, [constants.BROTLI_PARAM_MODE]: constants.BROTLI_MODE_TEXT } })
    this.z.on('data', (chunk: Buffer) => {
      if (this.closed) return
      policyTally.compressedOut[algorithm] = (policyTally.compressedOut[algorithm] ?? 0) + chunk.length
      if (!out.sendOut(chunk)) this.z.pause()
    })
    this.z.on('drain', () => { if (!this.closed) out.compressorDrained() })
    this.z.on('end', () => { if (!this.closed) out.compressedEnd() })
    // zlib fails only when it cannot allocate: the answer is cut (never left hanging)
    this.z.on('error', (err) => { if (!this.closed) out.compressorFailed(err) })
    policyTally.compressed[algorithm] = (policyTally.compressed[algorithm] ?? 0) + 1
  }

  write (chunk: Buffer): boolean {
    policyTally.compressedIn[this.algorithm] = (policyTally.compressedIn[this.algorithm] ?? 0) + chunk.length
    this.z.write(chunk)
    this.z.flush(this.flushKind)
    return !this.z.writableNeedDrain
  }

  end (): void {
    this.z.end()
  }

  /** the client drained: zlib's output may flow again */
  resume (): void {
    this.z.resume()
  }

  destroy (): void {
    this.closed = true
    this.z.destroy()
  }
}
