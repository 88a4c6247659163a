/**
 * The `engine` key and CLAYLB_ENGINE: one engine (raw); "auto" and "raw" still load, "node" (removed)
 * and anything else are config errors naming where they came from.
 */
import t from 'tap'
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
