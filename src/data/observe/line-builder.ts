/**
 * @module data/observe/line-builder
 * One access log line written piece by piece into a reused Buffer: constant pieces and the
 * request's own strings are copied as latin1 (the bytes of a path as they came), integers written
 * digit by digit, so a line makes no intermediate string (no concatenation, no number-to-string).
 * The sink then copies the bytes into its batch.
 */
export class LineBuilder {
  buf = Buffer.allocUnsafe(16 * 1024)
  at = 0

  private room (n: number): void {
    if (this.at + n <= this.buf.length) return
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.at + n))
    this.buf.copy(bigger, 0, 0, this.at)
    this.buf = bigger
  }

  s (v: string): void {
    this.room(v.length)
    this.at += this.buf.write(v, this.at, 'latin1')
  }

  /** a non-negative integer */
  n (v: number): void {
    if (v < 0 || v > 9007199254740991 || v !== Math.floor(v)) {
      this.s(String(v))
      return
    }
    this.room(16)
    const b = this.buf
    let end = this.at
    let x = v
    do { end++; x = Math.floor(x / 10) } while (x > 0)
    const stop = this.at
    this.at = end
    x = v
    do { b[--end] = 48 + (x % 10); x = Math.floor(x / 10) } while (end > stop)
  }

  /** a duration in ms, to 2 decimals, as JSON writes the number (1.5, 2, 0.05) */
  ms (v: number): void {
    const c = Math.round(v * 100)
    if (c < 0) { this.s(String(c / 100)); return }
    this.n(Math.floor(c / 100))
    const frac = c % 100
    if (frac === 0) return
    this.room(3)
    const b = this.buf
    b[this.at++] = 46 /* . */
    b[this.at++] = 48 + Math.floor(frac / 10)
    if (frac % 10 !== 0) b[this.at++] = 48 + (frac % 10)
  }

  /** a JSON string: copied between quotes, JSON.stringify only when a character needs escaping */
  js (v: string): void {
    for (let i = 0; i < v.length; i++) {
      const c = v.charCodeAt(i)
      if (c < 32 || c === 34 || c === 92) {
        this.s(JSON.stringify(v))
        return
      }
    }
    this.room(v.length + 2)
    const b = this.buf
    b[this.at++] = 34
    this.at += b.write(v, this.at, 'latin1')
    b[this.at++] = 34
  }
}
