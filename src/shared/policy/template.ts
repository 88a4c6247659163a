/**
 * @module shared/policy/template
 * `{name}` placeholders in a configured string, split once at load into literal parts and slots, so
 * a request fills them by concatenation (no regular expression, no parsing per request). A `{` not
 * followed by a name and `}` is a literal.
 */

export interface Template {
  /** literal text before each slot, and the text after the last (parts.length = slots.length + 1) */
  readonly parts: readonly string[]
  /** which value each slot takes (an index into the values a caller passes) */
  readonly slots: readonly number[]
}

const PLACEHOLDER = /\{([A-Za-z0-9_]+)\}/g

/** the template of `s`, or the first unknown placeholder's name (as `{name}`) */
export function parseTemplate (s: string, known: (name: string) => number): Template | string {
  const parts: string[] = []
  const slots: number[] = []
  let from = 0
  for (const m of s.matchAll(PLACEHOLDER)) {
    const slot = known(m[1]!)
    if (slot < 0) return m[0]
    parts.push(s.slice(from, m.index))
    slots.push(slot)
    from = m.index + m[0].length
  }
  parts.push(s.slice(from))
  return { parts, slots }
}

/** the template with each slot's value (values[slot]; undefined: '') */
export function fill (t: Template, values: readonly (string | undefined)[]): string {
  let out = t.parts[0]!
  for (let i = 0; i < t.slots.length; i++) out += (values[t.slots[i]!] ?? '') + t.parts[i + 1]!
  return out
}
