/**
 * One registry of process error codes: every class claylb throws carries a code from PROCESS_ERRORS,
 * its own class name, and stays an instance of its class and of ClaylbError.
 */
import t from 'tap'
import { ClaylbError, PROCESS_ERRORS } from '../src/shared/errors.js'
import { ConfigError } from '../src/shared/config/load.js'
import { StateTierStartError } from '../src/shared/redis/embedded.js'
import { SessionSecretError } from '../src/app-side/session/secret.js'
import { SessionUsageError } from '../src/app-side/session/errors.js'
import { AppNotFound } from '../src/control/supervisor/app-module.js'
import { WorkerNotReady } from '../src/control/supervisor/worker-process.js'
import { RolloutAbandoned } from '../src/control/supervisor/supervisor.js'

t.test('every process error: a registered code, its class name, instanceof both', async (t) => {
  const errors: Array<[ClaylbError, Function, string]> = [
    [new ConfigError(['a: bad']), ConfigError, 'CLAYLB_ERR_CONFIG'],
    [new StateTierStartError('x', { cause: new Error('y') }), StateTierStartError, 'CLAYLB_ERR_REDIS_UNREACHABLE'],
    [new SessionSecretError('x'), SessionSecretError, 'CLAYLB_ERR_SESSION_SECRET'],
    [new SessionUsageError('x'), SessionUsageError, 'CLAYLB_ERR_SESSION_USAGE'],
    [new AppNotFound('x'), AppNotFound, 'CLAYLB_ERR_APP_NOT_FOUND'],
    [new WorkerNotReady('x'), WorkerNotReady, 'CLAYLB_ERR_WORKER_NOT_READY'],
    [new RolloutAbandoned('x'), RolloutAbandoned, 'CLAYLB_ERR_ROLLOUT_ABANDONED'],
  ]
  for (const [err, cls, code] of errors) {
    t.equal(err.code, code, `${cls.name}: ${code}`)
    t.ok(err.code in PROCESS_ERRORS, `${code} is registered`)
    t.equal(err.name, cls.name, `its name is ${cls.name}`)
    t.ok(err instanceof cls && err instanceof ClaylbError && err instanceof Error, `${cls.name} is a ClaylbError`)
  }
  t.equal((errors[1]![0].cause as Error).message, 'y', 'the cause is kept')
  t.match(new ConfigError(['a: bad'], 'f.yaml').message, 'invalid config (f.yaml):\n  a: bad')
})
