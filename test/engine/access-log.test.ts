/**
 * The access log writer: pino-compatible lines, batched, written asynchronously, flushed whole.
 */
import t from 'tap'
import { waitFor } from '../helpers/wait.js'
import { closeSync, mkdtempSync, openSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createAccessLog } from '../../src/shared/log.js'

t.test('every line arrives, in order, as JSON with pino\'s fields; a path\'s bytes are kept', async (t) => {
  const file = join(mkdtempSync(join(tmpdir(), 'claylb-log-')), 'access.log')
  const fd = openSync(file, 'w')
  t.teardown(() => closeSync(fd))
  const log = createAccessLog('info', 'claylb', fd)
  const N = 2000
  for (let i = 0; i < N; i++) log.request('GET', `/p/${i}?q="x"`, 200, 'up:1', 1, i / 3)
  log.request('POST', '/caf\xc3\xa9', 499, undefined, 0, undefined, true)
  log.request('GET', `/${'x'.repeat(10_000)}`, 414, 'up:1', 1, 1)
  // the full batches go out asynchronously (one write in flight at a time) ...
  await waitFor(() => readFileSync(file).length > 0, 'the first full batch written')
  const before = readFileSync(file).length
  t.ok(before > 0 && before < 200 * N, 'full batches were written without a flush; the last partial one waits')
  // ... and flush() writes what still waits (shutdown), after the batch still being written: flushed
  // as soon as the first batch landed, a later one is in flight (before, flush() wrote the rest at
  // once and that batch landed after it, or never with a process that exits: lines lost, out of order)
  await log.flush()
  const raw = readFileSync(file)
  const lines = raw.toString('latin1').trim().split('\n')
  t.equal(lines.length, N + 2, 'no line lost or cut')
  const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>)
  t.same(parsed.slice(0, N).map((l) => l['path']), Array.from({ length: N }, (_v, i) => `/p/${i}?q="x"`), 'in order')
  t.match(parsed[0], { level: 30, name: 'claylb', method: 'GET', status: 200, upstream: 'up:1', attempts: 1, ms: 0, msg: 'request' })
  t.equal(typeof parsed[0]!['time'], 'number')
  t.equal(parsed[0]!['pid'], process.pid)
  t.notOk('upstream' in parsed[N]! || 'ms' in parsed[N]!, 'answered by claylb: no upstream, no ms')
  t.equal(parsed[N]!['replayed'], true, 'a replay is marked')
  t.notOk('replayed' in parsed[0]!)
  t.ok(raw.includes(Buffer.from('/caf\xc3\xa9', 'latin1')), 'the path\'s bytes as they came (UTF-8 stays UTF-8)')
  t.equal((parsed[N + 1]!['path'] as string).length, 10_001, 'a line longer than a batch is written whole')
  t.equal(log.dropped, 0)
})

t.test('below info level nothing is written', async (t) => {
  const file = join(mkdtempSync(join(tmpdir(), 'claylb-log-')), 'access.log')
  const fd = openSync(file, 'w')
  t.teardown(() => closeSync(fd))
  const log = createAccessLog('warn', 'claylb', fd)
  log.request('GET', '/', 200, 'u', 1, 1)
  await log.flush()
  t.equal(readFileSync(file, 'utf8'), '')
})
