/**
 * listen.processes: the key, --processes, CLAYLB_PROCESSES, and what "auto" resolves to.
 */
import t from 'tap'
import { buildConfig } from '../../src/shared/config/load.js'
import { hasReusePort, proxyProcessCount } from '../../src/control/process/count.js'
import { main } from '../../src/cli.js'

t.test('the key, then CLAYLB_PROCESSES, else auto; bad values name where they came from', async (t) => {
  t.equal(buildConfig({}, {}, {}).listen.processes, 'auto')
  t.equal(buildConfig({ listen: { processes: 3 } }, {}, { CLAYLB_PROCESSES: '2' }).listen.processes, 3, 'the file wins')
  t.equal(buildConfig({}, {}, { CLAYLB_PROCESSES: '2' }).listen.processes, 2)
  t.equal(buildConfig({ listen: { processes: 3 } }, { processes: 1 }, {}).listen.processes, 1, 'the flag wins')
  t.throws(() => buildConfig({ listen: { processes: 0 } }, {}, {}), { message: /listen\.processes: must be "auto" or an integer from 1 to 256/ })
  t.throws(() => buildConfig({ listen: { processes: 'many' } }, {}, {}), { message: /listen\.processes/ })
  t.throws(() => buildConfig({}, {}, { CLAYLB_PROCESSES: 'x' }), { message: /CLAYLB_PROCESSES: must be "auto" or an integer/ })
})

t.test('--processes must be auto or a positive integer', async (t) => {
  const err: string[] = []
  const write = process.stderr.write.bind(process.stderr)
  process.stderr.write = ((s: string) => { err.push(String(s)); return true }) as typeof process.stderr.write
  try {
    t.equal(await main(['start', '--processes', '0']), 1)
  } finally {
    process.stderr.write = write
  }
  t.match(err.join(''), /--processes: must be "auto" or a positive integer/)
})

t.test('auto: every CPU without workers; with workers at most half, never more than the workers', async (t) => {
  const c = (o: Record<string, unknown>) => buildConfig(o, {}, {})
  t.equal(proxyProcessCount(c({ upstreams: [{ url: 'http://a:1' }] }), 2), 2)
  t.equal(proxyProcessCount(c({ upstreams: [{ url: 'http://a:1' }] }), 16), 16)
  t.equal(proxyProcessCount(c({}), 2), 1, 'the demo (4 workers) on 2 CPUs: one')
  t.equal(proxyProcessCount(c({}), 16), 4, '4 workers on 16 CPUs: four')
  t.equal(proxyProcessCount(c({ workers: { count: 1 } }), 16), 1)
  t.equal(proxyProcessCount(c({ listen: { processes: 3 } }), 2), 3, 'a number is taken as it is')
})

t.test('reusePort is detected by version: Node 22.12+ and 23.1+', async (t) => {
  t.notOk(hasReusePort('20.20.2'))
  t.notOk(hasReusePort('22.11.0'))
  t.ok(hasReusePort('22.12.0'))
  t.ok(hasReusePort('24.1.0'))
})
