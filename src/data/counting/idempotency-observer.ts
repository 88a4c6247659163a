/**
 * @module data/counting/idempotency-observer
 * The idempotency layer's hooks → the data plane's counters (plain additions; read at scrape):
 * `claylb_idempotency_requests_total{outcome}` (one outcome per request on a keyed route),
 * `claylb_idempotency_lease_expiries_total`, `claylb_idempotency_unknown_outcomes_total`.
 */
import type { ProblemCode } from '../../shared/errors.js'
import type { Counters, IdempotencyOutcome } from './counters.js'
import type { IdempotencyObserver } from '../../shared/idempotency/core.js'

const BY_CODE: Partial<Record<ProblemCode, IdempotencyOutcome>> = {
  CLAYLB_IDEMPOTENCY_KEY_MISSING: 'key_missing',
  CLAYLB_IDEMPOTENCY_KEY_INVALID: 'key_invalid',
  CLAYLB_IDEMPOTENCY_IN_FLIGHT: 'conflict',
  CLAYLB_IDEMPOTENCY_OUTCOME_UNKNOWN: 'outcome_unknown',
  CLAYLB_IDEMPOTENCY_TOO_LARGE: 'not_stored',
  CLAYLB_IDEMPOTENCY_MISMATCH: 'mismatch',
  // a keyed request refused before it was claimed: a path that cannot be normalised, a body too
  // large to fingerprint, JSON with a member name twice
  CLAYLB_PATH_NOT_NORMALISABLE: 'request_invalid',
  CLAYLB_BODY_TOO_LARGE: 'request_invalid',
  CLAYLB_INVALID_JSON: 'request_invalid',
}

export function countingObserver (m: Counters): IdempotencyObserver {
  const t = m.idempotency
  return {
    execution () { t.executed.inc() },
    replay () { t.replayed.inc() },
    rejected (_status, code) {
      const o = BY_CODE[code as ProblemCode]
      if (o !== undefined) t[o].inc()
    },
    leaseLost () { m.idempotencyLeaseExpiries.inc() },
    unknownOutcome () { m.idempotencyUnknownOutcomes.inc() },
    failClosed () { t.state_unavailable.inc() },
  }
}
