/**
 * @module config/policy
 * The checks of `rateLimits` and `access` that one key's schema cannot make: a limit name given twice
 * (it labels a metric and names a Redis bucket), and each CIDR: it parses, and has no host bits set
 * (`10.0.0.1/8` is a slip for `10.0.0.0/8` or `10.0.0.1/32`: refused rather than guessed).
 */
import type { z } from 'zod'
import type { configSchema } from './schema.js'
import { parseCidr } from './routing.js'

type Parsed = z.output<typeof configSchema>

export function policyProblems (c: Parsed): string[] {
  const out: string[] = []
  const names = new Map<string, number>()
  c.rateLimits.forEach((l, i) => {
    const first = names.get(l.name)
    if (first !== undefined) out.push(`rateLimits[${i}].name: "${l.name}" is already the name of rateLimits[${first}]`)
    else names.set(l.name, i)
  })
  c.access.forEach((r, i) => {
    for (const list of ['allow', 'deny'] as const) {
      r[list].forEach((cidr, j) => {
        const problem = cidrProblem(cidr)
        if (problem !== undefined) out.push(`access[${i}].${list}[${j}]: ${problem}`)
      })
    }
    if (r.allow.length === 0 && r.deny.length === 0) out.push(`access[${i}]: needs allow or deny (a CIDR list)`)
  })
  return out
}

/** why `cidr` is not a usable network (undefined: it is one) */
export function cidrProblem (cidr: string): string | undefined {
  const p = parseCidr(cidr)
  if (p === undefined) return `must be a CIDR (10.0.0.0/8, fd00::/8) or an IP address, got ${JSON.stringify(cidr)}`
  const bytes = addressBytes(p[0])
  const [, prefix] = p
  for (let bit = prefix; bit < bytes.length * 8; bit++) {
    if ((bytes[bit >> 3]! & (0x80 >> (bit & 7))) !== 0) return `${cidr} has host bits set: the network is ${networkOf(bytes, prefix, p[2])}/${prefix}`
  }
  return undefined
}

/** an address (already checked by isIP) as its 4 or 16 bytes */
export function addressBytes (addr: string): number[] {
  if (!addr.includes(':')) return addr.split('.').map(Number)
  let tail: number[] = []
  let text = addr
  const dot = addr.lastIndexOf(':')
  if (addr.includes('.')) {
    // ::ffff:10.0.0.1 — the last 32 bits written as IPv4
    tail = addr.slice(dot + 1).split('.').map(Number)
    text = addr.slice(0, dot + 1) + '0:0'
  }
  const [head, rest] = text.split('::') as [string, string | undefined]
  const groups = (s: string): number[] => s === '' ? [] : s.split(':').map((g) => parseInt(g, 16))
  const h = groups(head)
  const r = rest === undefined ? [] : groups(rest)
  const all = [...h, ...new Array<number>(8 - h.length - r.length).fill(0), ...r]
  const out: number[] = []
  for (const g of all) out.push(g >> 8, g & 0xff)
  if (tail.length === 4) out.splice(12, 4, ...tail)
  return out
}

function networkOf (bytes: readonly number[], prefix: number, family: 'ipv4' | 'ipv6'): string {
  const b = bytes.map((v, i) => {
    const keep = Math.max(0, Math.min(8, prefix - i * 8))
    return v & ((0xff << (8 - keep)) & 0xff)
  })
  if (family === 'ipv4') return b.join('.')
  const g: string[] = []
  for (let i = 0; i < 16; i += 2) g.push(((b[i]! << 8) | b[i + 1]!).toString(16))
  return g.join(':').replace(/(^|:)0(:0)+(:|$)/, '::')
}
