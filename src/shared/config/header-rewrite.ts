/**
 * @module routing/header-rewrite
 * A route's `{ set, remove }` for one direction, precompiled at config load: the names the header
 * pass drops (removed ones and the ones set, so a set header is never doubled) and the lines it
 * appends. Applied inside the one pass that re-serialises a head (engine/head.ts), so a rewrite
 * costs a Set lookup per header and one string append.
 */

export interface HeaderRewrite {
  /** lower-case names dropped from the message (remove ∪ names of set) */
  readonly drop: ReadonlySet<string>
  /** `name: value\r\n` for every set header */
  readonly lines: string
}

/** the headers that frame or route a message: claylb writes them itself, a rewrite may not */
export const NOT_REWRITABLE: ReadonlySet<string> = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade',
  'content-length', 'expect', 'http2-settings',
])

export function compileRewrite (r: { readonly set: Readonly<Record<string, string>>, readonly remove: readonly string[] } | undefined): HeaderRewrite | null {
  if (r === undefined) return null
  const names = Object.keys(r.set)
  if (names.length === 0 && r.remove.length === 0) return null
  const drop = new Set<string>()
  for (const n of r.remove) drop.add(n.toLowerCase())
  let lines = ''
  for (const n of names) {
    drop.add(n.toLowerCase())
    lines += `${n}: ${r.set[n]!}\r\n`
  }
  return { drop, lines }
}
