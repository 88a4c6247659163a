/**
 * @module idempotency/canonical-json
 * The canonical text of a JSON document, for fingerprints: two documents get the same text exactly when
 * they hold the same value. Read straight from the source text, never through JavaScript numbers, so
 * nothing is rounded: `10`, `10.0` and `1e1` are one value, `1234567890123456789` and
 * `1234567890123456790` are two. Member order and whitespace do not count; a member name given twice
 * is refused (RFC 8259 leaves its meaning undefined, and parsers disagree on which one wins).
 *
 * Output: objects with members sorted by name (UTF-16 code units, as RFC 8785), strings as
 * `JSON.stringify` writes them, numbers as `[-]<digits>e<exponent>` with no leading or trailing zero
 * digit (zero is `0`). A fingerprint format, not a wire format.
 */

export class JsonSyntaxError extends Error {
  constructor (message: string, readonly at: number) {
    super(`${message} at offset ${at}`)
    this.name = 'JsonSyntaxError'
  }
}

/** A member name given twice in one object. */
export class JsonDuplicateMemberError extends Error {
  constructor (readonly member: string, readonly at: number) {
    super(`duplicate member name ${JSON.stringify(member)} at offset ${at}`)
    this.name = 'JsonDuplicateMemberError'
  }
}

/** deeper than this is refused as a syntax error, so a hostile body cannot exhaust the stack */
export const MAX_DEPTH = 256

/** The canonical text of `text`. Throws JsonSyntaxError or JsonDuplicateMemberError. */
export function canonicalJson (text: string): string {
  const p = new Reader(text)
  p.ws()
  const out = p.value(0)
  p.ws()
  if (p.i !== text.length) throw new JsonSyntaxError('unexpected text after the value', p.i)
  // a document that is not JSON at all is a syntax error first, wherever its duplicate is
  if (p.duplicate !== undefined) throw p.duplicate
  return out
}

const isDigit = (c: number): boolean => c >= 48 && c <= 57

interface Member { readonly name: string, readonly at: number, readonly text: string }
const byName = (a: Member, b: Member): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
const WORDS = ['true', 'false', 'null'] as const

class Reader {
  i = 0
  /** the first member name given twice, thrown once the whole document parsed */
  duplicate: JsonDuplicateMemberError | undefined
  constructor (private readonly s: string) {}

  ws (): void {
    const s = this.s
    for (;;) {
      const c = s.charCodeAt(this.i)
      if (c === 32 || c === 9 || c === 10 || c === 13) this.i++
      else return
    }
  }

  value (depth: number): string {
    if (depth > MAX_DEPTH) throw new JsonSyntaxError('nested too deeply', this.i)
    const c = this.s.charCodeAt(this.i)
    if (c === 123) return this.object(depth)
    if (c === 91) return this.array(depth)
    if (c === 34) return this.stringText()
    if (c === 45 || isDigit(c)) return this.number()
    for (const word of WORDS) {
      if (this.s.startsWith(word, this.i)) {
        this.i += word.length
        return word
      }
    }
    throw new JsonSyntaxError('expected a value', this.i)
  }

  private object (depth: number): string {
    this.i++ // {
    const members: Member[] = []
    this.ws()
    if (this.s.charCodeAt(this.i) === 125) { this.i++; return '{}' }
    for (;;) {
      this.ws()
      if (this.s.charCodeAt(this.i) !== 34) throw new JsonSyntaxError('expected a member name', this.i)
      const at = this.i
      const text = this.stringText()
      // the name itself (for order and duplicates): the text's inside when it needed no escaping
      const name = this.plain ? text.slice(1, -1) : JSON.parse(text) as string
      this.ws()
      if (this.s.charCodeAt(this.i) !== 58) throw new JsonSyntaxError('expected ":"', this.i)
      this.i++
      this.ws()
      members.push({ name, at, text: `${text}:${this.value(depth + 1)}` })
      this.ws()
      const c = this.s.charCodeAt(this.i++)
      if (c === 125) break
      if (c !== 44) throw new JsonSyntaxError('expected "," or "}"', this.i - 1)
    }
    // stable: members of one name stay in document order, so a repeat follows its first
    members.sort(byName)
    let out = '{'
    for (let k = 0; k < members.length; k++) {
      const m = members[k]!
      if (k > 0) {
        out += ','
        // the earliest repeat in the document is reported, as a single pass would find it
        if (m.name === members[k - 1]!.name && (this.duplicate === undefined || m.at < this.duplicate.at)) this.duplicate = new JsonDuplicateMemberError(m.name, m.at)
      }
      out += m.text
    }
    return out + '}'
  }

  /** set by stringText: the token was its own canonical text (no escape, no surrogate) */
  private plain = false

  /**
   * A string token's canonical text (`JSON.stringify` of its value). Most strings have no escape
   * and no surrogate: their source text is already that, and is returned as it is.
   */
  private stringText (): string {
    const s = this.s
    const start = this.i
    for (let i = start + 1; ; i++) {
      const c = s.charCodeAt(i)
      if (c === 34) {
        this.i = i + 1
        this.plain = true
        return s.slice(start, i + 1)
      }
      if (c === 92 || c < 0x20 || (c >= 0xd800 && c <= 0xdfff) || Number.isNaN(c)) break
    }
    this.plain = false
    return JSON.stringify(this.string())
  }

  private array (depth: number): string {
    this.i++ // [
    this.ws()
    if (this.s.charCodeAt(this.i) === 93) { this.i++; return '[]' }
    let out = '['
    for (let first = true; ; first = false) {
      this.ws()
      out += (first ? '' : ',') + this.value(depth + 1)
      this.ws()
      const c = this.s.charCodeAt(this.i++)
      if (c === 93) return out + ']'
      if (c !== 44) throw new JsonSyntaxError('expected "," or "]"', this.i - 1)
    }
  }

  /** A string token's value (the reader is on its opening quote). */
  private string (): string {
    const s = this.s
    let i = this.i + 1
    let out = ''
    let from = i
    for (;;) {
      const c = s.charCodeAt(i)
      if (Number.isNaN(c)) throw new JsonSyntaxError('unterminated string', this.i)
      if (c === 34) break
      if (c < 0x20) throw new JsonSyntaxError('control character in a string', i)
      if (c !== 92) { i++; continue }
      out += s.slice(from, i)
      const e = s.charCodeAt(i + 1)
      switch (e) {
        case 34: out += '"'; break
        case 92: out += '\\'; break
        case 47: out += '/'; break
        case 98: out += '\b'; break
        case 102: out += '\f'; break
        case 110: out += '\n'; break
        case 114: out += '\r'; break
        case 116: out += '\t'; break
        case 117: {
          const hex = s.slice(i + 2, i + 6)
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) throw new JsonSyntaxError('bad \\u escape', i)
          out += String.fromCharCode(parseInt(hex, 16))
          i += 4
          break
        }
        default: throw new JsonSyntaxError('bad escape', i)
      }
      i += 2
      from = i
    }
    out += s.slice(from, i)
    this.i = i + 1
    return out
  }

  /** A number token as its exact decimal value: `[-]<digits>e<exponent>`, or `0`. */
  private number (): string {
    const s = this.s
    const start = this.i
    let i = start
    const negative = s.charCodeAt(i) === 45
    if (negative) i++
    const intStart = i
    if (s.charCodeAt(i) === 48) i++
    else if (isDigit(s.charCodeAt(i))) while (isDigit(s.charCodeAt(i))) i++
    else throw new JsonSyntaxError('expected a digit', i)
    let digits = s.slice(intStart, i)
    let fracLen = 0
    if (s.charCodeAt(i) === 46) {
      const f = ++i
      while (isDigit(s.charCodeAt(i))) i++
      if (i === f) throw new JsonSyntaxError('expected a digit after "."', i)
      digits += s.slice(f, i)
      fracLen = i - f
    }
    let exp = '0'
    const e = s.charCodeAt(i)
    if (e === 101 || e === 69) {
      i++
      const signAt = i
      if (s.charCodeAt(i) === 43 || s.charCodeAt(i) === 45) i++
      const d = i
      while (isDigit(s.charCodeAt(i))) i++
      if (i === d) throw new JsonSyntaxError('expected an exponent', i)
      exp = (s.charCodeAt(signAt) === 45 ? '-' : '') + s.slice(d, i)
    }
    this.i = i
    // the value is digits × 10^(exp − fracLen); drop zeros that say nothing about it
    let lead = 0
    while (lead < digits.length && digits.charCodeAt(lead) === 48) lead++
    if (lead === digits.length) return '0'
    let end = digits.length
    while (digits.charCodeAt(end - 1) === 48) end--
    const shift = digits.length - end - fracLen
    // exponents are unbounded in JSON: plain numbers while they are exact, BigInt beyond
    const expText = exp.length < 16 ? String(Number(exp) + shift) : String(BigInt(exp) + BigInt(shift))
    return `${negative ? '-' : ''}${digits.slice(lead, end)}e${expText}`
  }
}
