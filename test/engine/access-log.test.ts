/**
 * The access log writer: pino-compatible lines, batched, written asynchronously, flushed whole; the
 * combined/common formats; the sink's reopen.
 */
import t from 'tap'
import { closeSync, mkdtempSync, openSync, readFileSync, renameSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createAccessLog, DEFAULT_FIELDS, type LoggedRequest } from '../../src/data/observe/access-log.js'
import { createLineSink } from '../../src/data/observe/log-sink.js'

function req (o: Partial<LoggedRequest> & { ms?: number, headers?: Record<string, string> } = {}): LoggedRequest {
  const headers = o.headers ?? {}
  return {
    method: 'GET', path: '/', hostHeader: 'a.example', clientStatus: 200, ended: 0, attempts: 1, replayed: false, requestId: 'r-1',
    traceId: '', rateLimit: '', bytesIn: 40, headOut: 30, bodyOut: 17, upstreamMs: -1, host: { id: 'up:1' }, pool: { name: 'default' },
    route: { index: -1 }, protocol: 'HTTP/1.1',
    resolvedClient: () => '10.0.0.7', tlsVersion: () => '', sni: () => '', header: (n: string) => headers[n] ?? '', idempotencyOutcome: () => '',
    ...o,
  }
}

t.test('every line arrives, in order, as JSON with pino\'s fields; a path\'s bytes are kept', async (t) => {
  const file = join(mkdtempSync(join(tmpdir(), 'claylb-log-')), 'access.log')
  const fd = openSync(file, 'w')
  t.teardown(() => closeSync(fd))
  const log = createAccessLog({ format: 'json', fields: DEFAULT_FIELDS, name: 'claylb' }, createLineSink(fd))
  const N = 2000
  for (let i = 0; i < N; i++) log.request(req({ path: `/p/${i}?q="x"` }), Date.now(), i / 3)
  log.request(req({ method: 'POST', path: '/caf\xc3\xa9', clientStatus: 499, ended: 1, host: undefined, attempts: 0, replayed: true }), Date.now(), 2)
  log.request(req({ path: `/${'x'.repeat(10_000)}`, clientStatus: 414 }), Date.now(), 1)
  // the full batches go out asynchronously, one write in flight at a time: the first is under way now.
  // flush() (shutdown) writes what still waits AFTER it (before, flush() wrote the rest at once and the
  // batch in flight landed after it, or never with a process that exits: lines lost, out of order)
  await log.flush()
  const raw = readFileSync(file)
  const lines = raw.toString('latin1').trim().split('\n')
  t.equal(lines.length, N + 2, 'no line lost or cut')
  const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>)
  t.same(parsed.slice(0, N).map((l) => l['path']), Array.from({ length: N }, (_v, i) => `/p/${i}?q="x"`), 'in order')
  t.match(parsed[0], { level: 30, name: 'claylb', method: 'GET', status: 200, ended: 'complete', upstream: 'up:1', attempts: 1, ms: 0, requestId: 'r-1', msg: 'request' })
  t.equal(typeof parsed[0]!['time'], 'number')
  t.equal(parsed[0]!['pid'], process.pid)
  t.notOk('upstream' in parsed[N]!, 'answered by claylb: no upstream')
  t.match(parsed[N], { replayed: true, status: 499, ended: 'client-aborted' }, 'a replay is marked')
  t.notOk('replayed' in parsed[0]!)
  t.ok(raw.includes(Buffer.from('/caf\xc3\xa9', 'latin1')), 'the path\'s bytes as they came (UTF-8 stays UTF-8)')
  t.equal((parsed[N + 1]!['path'] as string).length, 10_001, 'a line longer than a batch is written whole')
  t.equal(log.dropped, 0)
})

t.test('every JSON field, and only those asked for', async (t) => {
  const file = join(mkdtempSync(join(tmpdir(), 'claylb-log-')), 'access.log')
  const log = createAccessLog({
    format: 'json', name: 'x',
    fields: ['client', 'method', 'host', 'path', 'protocol', 'tls', 'sni', 'status', 'ended', 'bytesIn', 'bytesOut', 'bodyBytesOut', 'ms', 'upstreamMs',
      'upstream', 'attempts', 'pool', 'route', 'requestId', 'traceId', 'userAgent', 'referer', 'idempotency', 'replayed', 'rateLimit'],
  }, createLineSink(file))
  t.ok(log.timesUpstream, 'upstreamMs asked: the exchange measures it')
  log.request(req({
    ended: 2, upstreamMs: 1.234, traceId: 'ab'.repeat(16), rateLimit: 'allowed', protocol: 'HTTP/2.0', tlsVersion: () => 'TLSv1.3', sni: () => 'a.example',
    idempotencyOutcome: () => 'executed', headers: { 'user-agent': 'curl/8 "q"', referer: 'https://r/' },
  }), 1_700_000_000_000, 5)
  await log.flush()
  const line = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>
  t.same(line, {
    level: 30, time: 1_700_000_000_000, pid: process.pid, name: 'x', client: '10.0.0.7', method: 'GET', host: 'a.example', path: '/', protocol: 'HTTP/2.0',
    tls: 'TLSv1.3', sni: 'a.example', status: 200, ended: 'upstream-cut', bytesIn: 40, bytesOut: 47, bodyBytesOut: 17, ms: 5, upstreamMs: 1.23,
    upstream: 'up:1', attempts: 1, pool: 'default', route: -1, requestId: 'r-1', traceId: 'ab'.repeat(16), userAgent: 'curl/8 "q"', referer: 'https://r/',
    idempotency: 'executed', rateLimit: 'allowed', msg: 'request',
  })
  const few = join(mkdtempSync(join(tmpdir(), 'claylb-log-')), 'access.log')
  const log2 = createAccessLog({ format: 'json', name: 'x', fields: ['status'] }, createLineSink(few))
  t.notOk(log2.timesUpstream)
  log2.request(req(), 1, 1)
  await log2.flush()
  t.same(Object.keys(JSON.parse(readFileSync(few, 'utf8')) as object), ['level', 'time', 'pid', 'name', 'status', 'msg'])
})

t.test('combined and common: Apache/nginx lines, quotes escaped, - for an empty body', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'claylb-log-'))
  const combined = createAccessLog({ format: 'combined', fields: [], name: 'x' }, createLineSink(join(dir, 'c.log')))
  const common = createAccessLog({ format: 'common', fields: [], name: 'x' }, createLineSink(join(dir, 'o.log')))
  const at = Date.UTC(2026, 11, 8, 1, 2, 3)
  const r1 = req({ path: '/a?b=1', headers: { 'user-agent': 'ua "1"\x01', referer: 'https://ref/' } })
  const r2 = req({ method: 'HEAD', clientStatus: 304, bodyOut: 0, protocol: 'HTTP/2.0' })
  for (const log of [combined, common]) {
    log.request(r1, at, 1)
    log.request(r2, at, 1)
    await log.flush()
  }
  t.equal(readFileSync(join(dir, 'c.log'), 'latin1'),
    '10.0.0.7 - - [08/Dec/2026:01:02:03 +0000] "GET /a?b=1 HTTP/1.1" 200 17 "https://ref/" "ua \\x221\\x22\\x01"\n' +
    '10.0.0.7 - - [08/Dec/2026:01:02:03 +0000] "HEAD / HTTP/2.0" 304 - "-" "-"\n')
  t.equal(readFileSync(join(dir, 'o.log'), 'latin1'),
    '10.0.0.7 - - [08/Dec/2026:01:02:03 +0000] "GET /a?b=1 HTTP/1.1" 200 17\n' +
    '10.0.0.7 - - [08/Dec/2026:01:02:03 +0000] "HEAD / HTTP/2.0" 304 -\n')
})

t.test('reopen: lines after it go to the file at the path, none lost across the rename', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'claylb-log-'))
  const file = join(dir, 'access.log')
  const log = createAccessLog({ format: 'common', fields: [], name: 'x' }, createLineSink(file))
  const N = 3000
  for (let i = 0; i < N; i++) {
    if (i === 1500) {
      renameSync(file, join(dir, 'access.log.1'))
      log.reopen()
    }
    log.request(req({ path: `/${i}` }), 0, 1)
  }
  await log.flush()
  const old = readFileSync(join(dir, 'access.log.1'), 'latin1').split('\n').filter((l) => l !== '')
  const now = readFileSync(file, 'latin1').split('\n').filter((l) => l !== '')
  t.same([...old, ...now].map((l) => /"GET \/(\d+) /.exec(l)?.[1]), Array.from({ length: N }, (_v, i) => String(i)), 'every line once, in order, whole')
  t.ok(now.length >= N - 1500, 'the lines after the reopen are in the new file')
})
