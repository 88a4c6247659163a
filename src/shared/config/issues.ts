/**
 * @module config/issues
 * Schema issues made readable: an unknown key with the known key it was probably meant to be
 * ("did you mean"), and the raw config with every invalid value taken out, so that the checks across
 * keys (unknown pools, http2 without TLS, …) still run and one report lists every problem of a file.
 */
import type { z } from 'zod'

type Path = ReadonlyArray<PropertyKey>

interface Def { type: string, shape?: Record<string, z.ZodType>, innerType?: z.ZodType, in?: z.ZodType, element?: z.ZodType, valueType?: z.ZodType, options?: z.ZodType[] }
const defOf = (s: z.ZodType): Def => (s as unknown as { _zod: { def: Def } })._zod.def

/** the keys an object at `path` of `schema` accepts ([] when the path leads to no object) */
export function knownKeysAt (schema: z.ZodType, path: Path): string[] {
  const out = new Set<string>()
  const walk = (s: z.ZodType, rest: Path): void => {
    const d = defOf(s)
    const inner = d.innerType ?? d.in
    if (inner !== undefined) return walk(inner, rest)
    if (d.type === 'union') return d.options?.forEach((o) => walk(o, rest))
    if (rest.length === 0) {
      if (d.type === 'object') for (const k of Object.keys(d.shape ?? {})) out.add(k)
      return
    }
    const [head, ...tail] = rest
    if (d.type === 'object' && typeof head === 'string' && d.shape?.[head] !== undefined) walk(d.shape[head], tail)
    else if (d.type === 'array' && typeof head === 'number' && d.element !== undefined) walk(d.element, tail)
    else if (d.type === 'record' && d.valueType !== undefined) walk(d.valueType, tail)
  }
  walk(schema, path)
  return [...out]
}

/** the known key closest to `key`, when it is close enough to be a slip (a typo, a missing s, the case) */
export function closestKey (key: string, known: readonly string[]): string | undefined {
  let best: string | undefined
  let bestDistance = Infinity
  for (const k of known) {
    const d = k.toLowerCase() === key.toLowerCase() ? 0 : distance(key.toLowerCase(), k.toLowerCase())
    if (d < bestDistance) { best = k; bestDistance = d }
  }
  return best !== undefined && bestDistance <= Math.min(3, Math.max(1, Math.floor(key.length / 3))) ? best : undefined
}

/** Levenshtein distance */
function distance (a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const cur = [i]
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1))
    prev = cur
  }
  return prev[b.length]!
}

const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v)

/**
 * A copy of `raw` without the values the issues point at: an unknown key goes, an invalid value goes
 * (its key in the nearest enclosing mapping, so an array keeps its indices and a problem's path stays
 * right). What is left may parse, with defaults in place of what went. Undefined when `raw` cannot be copied.
 */
export function withoutInvalid (raw: Record<string, unknown>, issues: readonly z.core.$ZodIssue[]): Record<string, unknown> | undefined {
  let copy: Record<string, unknown>
  try {
    copy = structuredClone(raw)
  } catch {
    return undefined // a value no config file holds (a function from a library caller): schema problems only
  }
  const remove = (path: Path): void => {
    // the deepest prefix whose parent is a mapping
    for (let end = path.length; end > 0; end--) {
      let parent: unknown = copy
      for (const seg of path.slice(0, end - 1)) parent = (parent as Record<PropertyKey, unknown> | undefined)?.[seg]
      const key = path[end - 1]
      if (isObj(parent) && typeof key === 'string') {
        delete parent[key]
        return
      }
    }
  }
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') for (const k of issue.keys) remove([...issue.path, k])
    else remove(issue.path)
  }
  return copy
}
