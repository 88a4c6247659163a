/**
 * @module data/policy/match
 * A `match` (host, pathPrefix, methods, headers: config/schema.ts matchSchema) compiled once into
 * plain fields. The route table's matcher and the policies' (rate limits, access rules) are this one
 * class, so a `match` means the same wherever it is written. Matching reads what the exchange already
 * has (method, path, Host, the raw header list) and allocates nothing: host names are compared in
 * place, case-insensitively, up to the port; path prefixes with startsWith; header names
 * case-insensitively against the raw list.
 */
import type { MatchConfig } from '../../shared/config/schema.js'

export class RequestMatch {
  /** lower-case; exact host */
  private readonly host: string | null
  /** lower-case `.example.com` of `*.example.com` */
  private readonly hostSuffix: string | null
  protected readonly pathPrefix: string | null
  private readonly methods: readonly string[] | null
  /** lower-case names and their wanted values (null: present with any value) */
  private readonly headerNames: readonly string[]
  private readonly headerValues: readonly (string | null)[]
  /** matches every request (an empty match) */
  readonly any: boolean

  constructor (m?: MatchConfig) {
    const host = m?.host?.toLowerCase().replace(/\.$/, '')
    this.host = host !== undefined && !host.startsWith('*.') ? host : null
    this.hostSuffix = host !== undefined && host.startsWith('*.') ? host.slice(1) : null
    this.pathPrefix = m?.pathPrefix ?? null
    this.methods = m?.methods ?? null
    const headers = Object.entries(m?.headers ?? {})
    this.headerNames = headers.map(([n]) => n.toLowerCase())
    this.headerValues = headers.map(([, v]) => v === true ? null : v)
    this.any = host === undefined && this.pathPrefix === null && this.methods === null && headers.length === 0
  }

  matches (method: string, path: string, host: string, raw: readonly string[]): boolean {
    if (this.methods !== null && !this.methods.includes(method)) return false
    if (this.pathPrefix !== null && !path.startsWith(this.pathPrefix)) return false
    if (this.host !== null || this.hostSuffix !== null) {
      const end = hostEnd(host)
      if (this.host !== null) {
        if (end !== this.host.length || !equalsLower(host, 0, this.host)) return false
      } else {
        const suffix = this.hostSuffix!
        if (end <= suffix.length || !equalsLower(host, end - suffix.length, suffix)) return false
      }
    }
    for (let i = 0; i < this.headerNames.length; i++) if (!hasHeader(raw, this.headerNames[i]!, this.headerValues[i]!)) return false
    return true
  }
}

/** where the host name ends in a Host value: before `:port`, after an IPv6 literal's `]`; a trailing dot is left out */
function hostEnd (host: string): number {
  let end: number
  if (host.charCodeAt(0) === 91 /* [ */) end = host.indexOf(']') + 1
  else {
    end = host.indexOf(':')
    if (end < 0) end = host.length
  }
  if (end > 0 && host.charCodeAt(end - 1) === 46 /* . */) end--
  return end
}

/** s[at…] equals `lower` (already lower-case), ASCII letters compared case-insensitively */
export function equalsLower (s: string, at: number, lower: string): boolean {
  for (let i = 0; i < lower.length; i++) {
    let c = s.charCodeAt(at + i)
    if (c >= 65 && c <= 90) c |= 0x20
    if (c !== lower.charCodeAt(i)) return false
  }
  return true
}

function hasHeader (raw: readonly string[], lowerName: string, value: string | null): boolean {
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i]!
    if (n.length === lowerName.length && equalsLower(n, 0, lowerName) && (value === null || raw[i + 1] === value)) return true
  }
  return false
}

/** the first value of a header (lower-case name) in the raw list */
export function headerValue (raw: readonly string[], lowerName: string): string | undefined {
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i]!
    if (n.length === lowerName.length && equalsLower(n, 0, lowerName)) return raw[i + 1]
  }
  return undefined
}
