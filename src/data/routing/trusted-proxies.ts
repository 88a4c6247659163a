/**
 * @module routing/trusted-proxies
 * `trustedProxies`, compiled once into Node's BlockList (IPv4 and IPv6 subnets; an IPv4 rule also
 * matches the peer's IPv4-mapped IPv6 form, as a dual-stack listener reports it). Asked once per
 * client connection, never per request.
 */
import { BlockList, isIPv4, isIPv6 } from 'node:net'
import { parseCidr } from '../../shared/config/routing.js'

export class TrustedProxies {
  private readonly list = new BlockList()
  readonly size: number

  constructor (cidrs: readonly string[]) {
    for (const c of cidrs) {
      const p = parseCidr(c)
      if (p === undefined) throw new TypeError(`not a CIDR: ${c}`) // load.ts reported it with its path
      this.list.addSubnet(p[0], p[1], p[2])
    }
    this.size = cidrs.length
  }

  /** the peer may speak for the client: its x-forwarded-proto / -host are kept */
  trusts (address: string): boolean {
    if (this.size === 0 || address === '') return false
    if (isIPv4(address)) return this.list.check(address, 'ipv4')
    return isIPv6(address) && this.list.check(address, 'ipv6')
  }
}
