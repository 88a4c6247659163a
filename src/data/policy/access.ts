/**
 * @module data/policy/access
 * `access:` rules compiled into Node's BlockList (IPv4 and IPv6 subnets; an IPv4 rule also matches
 * the IPv4-mapped form). Among the requests a rule's match selects, an address in `deny`, or outside
 * a non-empty `allow`, is refused (403). Every matching rule applies; deny wins over allow.
 */
import { BlockList, isIPv4 } from 'node:net'
import type { AccessRuleConfig } from '../../shared/config/schema.js'
import { parseCidr } from '../../shared/config/routing.js'
import { RequestMatch } from './match.js'

export class AccessRule {
  readonly match: RequestMatch
  private readonly allow: BlockList | null
  private readonly deny: BlockList | null

  constructor (r: AccessRuleConfig) {
    this.match = new RequestMatch(r.match)
    this.allow = listOf(r.allow)
    this.deny = listOf(r.deny)
  }

  /** `addr` (data/policy/client-address) may pass this rule */
  permits (addr: string): boolean {
    const family = isIPv4(addr) ? 'ipv4' : 'ipv6'
    if (this.deny !== null && this.deny.check(addr, family)) return false
    return this.allow === null || this.allow.check(addr, family)
  }
}

function listOf (cidrs: readonly string[]): BlockList | null {
  if (cidrs.length === 0) return null
  const list = new BlockList()
  for (const c of cidrs) {
    const p = parseCidr(c)
    if (p === undefined) throw new TypeError(`not a CIDR: ${c}`) // config/policy.ts reported it with its path
    list.addSubnet(p[0], p[1], p[2])
  }
  return list
}
