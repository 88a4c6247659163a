/**
 * @module data/policy/tally
 * What the route policies did in this process, as plain numbers (metrics/metrics.ts reads them at
 * scrape time; a proxy process sends them to the primary with its other counters).
 */

import type { PolicyTally } from '../../shared/process/protocol.js'

export type { PolicyTally }

export function newPolicyTally (): PolicyTally {
  return { redirects: {}, rewrites: 0, compressed: {}, compressedIn: {}, compressedOut: {} }
}

/** this process's tally (one engine per process) */
export const policyTally: PolicyTally = newPolicyTally()

export function addTally (into: PolicyTally, t: PolicyTally): void {
  for (const k of ['redirects', 'compressed', 'compressedIn', 'compressedOut'] as const) {
    for (const [n, v] of Object.entries(t[k])) into[k][n] = (into[k][n] ?? 0) + v
  }
  into.rewrites += t.rewrites
}
