import t from 'tap'
import { buildConfig, ConfigError } from '../../src/shared/config/load.js'

const problems = (raw: unknown): string[] => {
  try {
    buildConfig(raw)
    return []
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems]
    throw err
  }
}

t.test('health, outlier, panic and retry settings: defaults and messages', async (t) => {
  const c = buildConfig({})
  t.equal(c.healthCheck.path, undefined, 'no path: static upstreams get a TCP check, workers GET /healthz')
  t.match(c.healthCheck, { enabled: true, intervalMs: 2000, jitterPercent: 10, timeoutMs: 1000, unhealthyThreshold: 2, healthyThreshold: 1 })
  t.match(c.outlier, { enabled: true, consecutiveFailures: 5, baseEjectionMs: 30_000, maxEjectionMs: 300_000, maxEjectionPercent: 10 })
  t.match(c.panic, { thresholdPercent: 50, mode: 'spread' })
  t.match(c.retry, { attempts: 2, budgetPercent: 20, minRetryConcurrency: 3, backoffBaseMs: 25, backoffMaxMs: 250, perTryTimeoutMs: 0 })
  t.same(c.retry.onStatus, [])
  t.same(problems({ panic: { mode: 'ignore' } }), ['panic.mode: must be "spread" or "shed"'])
  t.same(problems({ outlier: { maxEjectionPercent: 120 } }), ['outlier.maxEjectionPercent: must be a number from 0 to 100'])
  t.same(problems({ outlier: { consecutiveFailures: 0 } }), ['outlier.consecutiveFailures: must be a positive integer'])
  t.same(problems({ retry: { onStatus: [404] } }), ['retry.onStatus.0: must be a 5xx status'])
  t.same(problems({ healthCheck: { jitter: 5 } }), ['healthCheck.jitter: unknown key'])
})
