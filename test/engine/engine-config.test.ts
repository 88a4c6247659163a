/**
 * The `engine` key and CLAYLB_ENGINE: one engine (raw); "auto" and "raw" still load, "node" (removed)
 * and anything else are config errors naming where they came from; setting either is deprecated (a
 * warning at start and in check-config): it chooses nothing.
 */
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { BIN, childEnv, startClaylb, writeConfig } from '../helpers/claylb.js'
import { buildConfig, ConfigError } from '../../src/shared/config/load.js'

const routes = { idempotency: { routes: [{ match: 'POST /orders' }] } }

t.test('auto is the default; raw and auto load, with or without idempotency routes', async (t) => {
  t.equal(buildConfig({}, {}, {}).engine, 'auto')
  t.equal(buildConfig({ engine: 'raw', ...routes }, {}, {}).engine, 'raw', 'the gate runs on the raw engine')
  t.equal(buildConfig(routes, {}, { CLAYLB_ENGINE: 'raw' }).engine, 'raw')
  t.equal(buildConfig({ engine: 'auto' }, {}, { CLAYLB_ENGINE: 'raw' }).engine, 'auto', 'the file wins')
})

t.test('"node" was removed: a config error that says so, from the file or the environment', async (t) => {
  t.throws(() => buildConfig({ engine: 'node' }, {}, {}), ConfigError)
  t.throws(() => buildConfig({ engine: 'node' }, {}, {}), { message: /engine: must be "auto" or "raw" \(the "node" engine was removed/ })
  t.throws(() => buildConfig({}, {}, { CLAYLB_ENGINE: 'node' }), { message: /CLAYLB_ENGINE: must be "auto" or "raw" \(the "node" engine was removed.*got "node"/ })
  t.throws(() => buildConfig({ engine: 'fast' }, {}, {}), { message: /engine: must be "auto" or "raw"/ })
  t.throws(() => buildConfig({}, {}, { CLAYLB_ENGINE: 'fast' }), { message: /CLAYLB_ENGINE: must be "auto" or "raw"/ })
})

t.test('setting it is deprecated: it chooses nothing and says so once at start and in check-config', async (t) => {
  const why = 'is deprecated and does nothing (the raw engine is the only one); remove it'
  t.same(buildConfig({}, {}, {}).deprecations, [], 'unset: nothing to say')
  t.same(buildConfig({ engine: 'raw' }, {}, {}).deprecations, [`engine: ${why}`])
  t.same(buildConfig({}, {}, { CLAYLB_ENGINE: 'auto' }).deprecations, [`CLAYLB_ENGINE: ${why}`])
  const file = writeConfig({ engine: 'auto' })
  const check = spawnSync(BIN, ['check-config', file], { encoding: 'utf8', env: childEnv() })
  t.equal(check.status, 0, 'still loads: no breaking change')
  t.equal(check.stdout, `warning: engine: ${why}\n${file}: ok\n`)
  const lb = await startClaylb({ config: { engine: 'raw', healthCheck: { enabled: false } }, env: { CLAYLB_ENGINE: 'raw' } })
  t.teardown(() => lb.stop('SIGKILL'))
  t.same(lb.logs.filter((l) => l['code'] === 'CONFIG_DEPRECATED').map((l) => l['msg']), [`engine: ${why}`, `CLAYLB_ENGINE: ${why}`], 'each once, at start')
})
