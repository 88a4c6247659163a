/**
 * Choosing the engine: the `engine` key, CLAYLB_ENGINE, and what `auto` picks.
 */
import t from 'tap'
import { buildConfig, ConfigError } from '../../src/config/load.js'
import { engineOf } from '../../src/app.js'

const routes = { idempotency: { routes: [{ match: 'POST /orders' }] } }

t.test('auto is the default: raw, or node when the idempotency gate is needed', async (t) => {
  const c = buildConfig({}, {}, {})
  t.equal(c.engine, 'auto')
  t.equal(engineOf(c), 'raw')
  t.equal(engineOf(buildConfig(routes, {}, {})), 'node')
})

t.test('the key, then CLAYLB_ENGINE; bad values are config errors naming where they came from', async (t) => {
  t.equal(buildConfig({ engine: 'node' }, {}, { CLAYLB_ENGINE: 'raw' }).engine, 'node', 'the file wins')
  t.equal(buildConfig({}, {}, { CLAYLB_ENGINE: 'node' }).engine, 'node')
  t.equal(engineOf(buildConfig({}, {}, { CLAYLB_ENGINE: 'raw' })), 'raw')
  t.throws(() => buildConfig({ engine: 'fast' }, {}, {}), { message: /engine: must be "auto", "node" or "raw"/ })
  t.throws(() => buildConfig({}, {}, { CLAYLB_ENGINE: 'fast' }), { message: /CLAYLB_ENGINE: must be "auto", "node" or "raw"/ })
  t.throws(() => buildConfig({ engine: 'raw', ...routes }, {}, {}), ConfigError, 'raw with idempotency routes is refused up front')
  t.throws(() => buildConfig({ engine: 'raw', ...routes }, {}, {}), { message: /does not run idempotency\.routes yet/ })
})
