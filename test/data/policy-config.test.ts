/**
 * redirect / rewrite / compression in the config: every bad input is a config error naming its path
 * (never a crash), and the compiled rules do what they say (template filling, the rewrite's groups,
 * accept-encoding negotiation with q-values, the compressed head's rules).
 */
import t from 'tap'
import fc from 'fast-check'
import { configProblems as problems } from '../helpers/config.js'
import { Redirect } from '../../src/shared/policy/redirect.js'
import { Rewrite } from '../../src/shared/policy/rewrite.js'
import { compressedLines, negotiate, Compression } from '../../src/data/policy/compression.js'

const up = { upstreams: [{ url: 'http://127.0.0.1:1' }] }

t.test('bad redirect, rewrite and compression settings: config errors with their paths', async (t) => {
  t.same(problems({ ...up, routes: [{ redirect: { to: 'https://{host}{path}', status: 305 } }] }), ['routes.0.redirect.status: must be 301, 302, 303, 307 or 308'], 'a status that is not a redirect')
  t.same(problems({ ...up, routes: [{ redirect: { to: 'https://{hostname}{path}' } }] }), ['routes[0].redirect.to: unknown placeholder {hostname} (known: {scheme}, {host}, {path}, {query})'], 'a placeholder that does not exist')
  t.same(problems({ ...up, routes: [{ redirect: { to: 'ftp://x/' } }] }), ['routes[0].redirect.to: must be an http(s) URL or a path starting with /, got "ftp://x/"'])
  t.same(problems({ ...up, routes: [{ redirect: { to: 'somewhere' } }] }), ['routes[0].redirect.to: must be an http(s) URL or a path starting with /, got "somewhere"'])
  t.same(problems({ ...up, routes: [{ redirect: { to: '/a b' } }] }), ['routes[0].redirect.to: must not contain spaces or control characters'])
  t.same(problems({ ...up, routes: [{ pool: 'default', redirect: { to: '/x' } }] }), ['routes[0].pool: a redirect route answers itself (nothing goes upstream); remove pool or redirect'])
  t.same(problems({ ...up, routes: [{ match: {} }] }), ['routes[0].pool: must name a pool (or the route needs a redirect)'])
  t.same(problems({ ...up, routes: [{ pool: 'default', rewrite: { pattern: '^/(a+)+$', replace: '/x' } }] }),
    ['routes[0].rewrite.pattern: "^/(a+)+$" may backtrack catastrophically: a quantifier inside a quantified group (an optional group counts: write (/.*|) for (/.*)?)'], 'a pattern that backtracks')
  t.same(problems({ ...up, routes: [{ pool: 'default', rewrite: { pattern: '^/(x', replace: '/x' } }] }).map((p) => p.replace(/: not a regular expression: .*/, ': not a regular expression')),
    ['routes[0].rewrite.pattern: not a regular expression'])
  t.same(problems({ ...up, routes: [{ pool: 'default', rewrite: { pattern: '^/api/(.*)$', replace: '/{2}' } }] }), ['routes[0].rewrite.replace: {2} is not a group of the pattern (it has 1; {0} is the whole match)'])
  t.same(problems({ ...up, routes: [{ pool: 'default', rewrite: { pattern: '^/a', replace: '/{x}' } }] }), ['routes[0].rewrite.replace: {x} is not a group of the pattern (it has 0; {0} is the whole match)'])
  t.same(problems({ ...up, routes: [{ pool: 'default', match: { pathPrefix: '/a' }, stripPrefix: true, rewrite: { pattern: '^/a', replace: '/' } }] }),
    ['routes[0].rewrite: stripPrefix and rewrite both change the path; use one (a rewrite can drop the prefix: pattern ^/api(/.*)$, replace {1})'])
  t.same(problems({ ...up, compression: { algorithms: ['zstd'] } }), ['compression.algorithms.0: must be "br" or "gzip"'], 'an unknown algorithm')
  t.same(problems({ ...up, routes: [{ pool: 'default', compression: { algorithms: ['br', 'deflate'] } }] }), ['routes.0.compression.algorithms.1: must be "br" or "gzip"'])
  t.same(problems({ ...up, compression: { types: ['text'], minBytes: -1, gzipLevel: 10 } }), [
    'compression.types.0: must be a media type (text/html, text/*)',
    'compression.minBytes: must be a non-negative integer',
    'compression.gzipLevel: must be an integer from 1 to 9',
  ])
  t.same(problems({ ...up, compression: {}, routes: [{ pool: 'default', compression: { enabled: false } }] }), [], 'enabled: false turns it off on a route')
})

t.test('redirect: placeholders filled, the query kept unless the target has its own', async (t) => {
  const r = Redirect.compile({ to: 'https://{host}{path}', status: 308 }) as Redirect
  t.equal(r.location('http', 'shop.test:8080', '/a/b?x=1&y'), 'https://shop.test/a/b?x=1&y')
  t.equal(r.location('http', '[::1]:80', '/'), 'https://[::1]/')
  const own = Redirect.compile({ to: '{scheme}://new.test/v2{path}?from={query}', status: 301 }) as Redirect
  t.equal(own.location('http', 'a', '/p?q=1'), 'http://new.test/v2/p?from=q=1', 'the target sets its own query')
  t.equal((Redirect.compile({ to: '/x{path}{y', status: 302 }) as Redirect).location('http', 'a', '/p'), '/x/p{y', 'a { without a name is a literal')
})

t.test('rewrite: the first match replaced with its groups, the query kept, a path always starts with /', async (t) => {
  const r = Rewrite.compile({ pattern: '^/api/v1/(users|orders)/(\\d+)$', replace: '/{1}?id={2}' }) as Rewrite
  t.equal(r.apply('/api/v1/users/42'), '/users?id=42')
  t.equal(r.apply('/api/v1/users/x'), '/api/v1/users/x', 'no match: as it was')
  const strip = Rewrite.compile({ pattern: '^/api(/.*|)$', replace: '{1}' }) as Rewrite
  t.equal(strip.apply('/api/x?y=1'), '/x?y=1')
  t.equal(strip.apply('/api?y=1'), '/?y=1', 'an empty path becomes /')
  const mid = Rewrite.compile({ pattern: 'old', replace: '{0}-new' }) as Rewrite
  t.equal(mid.apply('/a/old/old'), '/a/old-new/old', 'the first match only; {0} is the whole match')
})

t.test('negotiation: q-values, *, identity, ties by the server order', async (t) => {
  const both = ['br', 'gzip'] as const
  t.equal(negotiate('gzip, deflate, br', both), 'br', 'tie: the server order')
  t.equal(negotiate('gzip;q=1, br;q=0.5', both), 'gzip')
  t.equal(negotiate('br;q=0, gzip;q=0.1', both), 'gzip', 'q=0 refuses')
  t.equal(negotiate('br;q=0, gzip;q=0', both), '')
  t.equal(negotiate('*', both), 'br', '* takes any')
  t.equal(negotiate('*;q=0.5, br;q=0', both), 'gzip', 'an explicit q=0 beats *')
  t.equal(negotiate('identity', both), '')
  t.equal(negotiate('', both), '')
  t.equal(negotiate('x-gzip', both), 'gzip', 'x-gzip is gzip')
  t.equal(negotiate('GZIP ; Q=0.8', both), 'gzip', 'case-insensitive, spaces')
  t.equal(negotiate('br', ['gzip']), '', 'only what is configured')
})

t.test('what is compressed: type, size, encoded, no-transform, ranges, HEAD, 204/206/304', async (t) => {
  const z = new Compression({ enabled: true, algorithms: ['gzip'], types: ['text/*', 'application/json'], minBytes: 100, gzipLevel: 1, brotliQuality: 1 })
  const rq = ['accept-encoding', 'gzip']
  const ans = (h: Record<string, string>): string[] => Object.entries({ 'content-type': 'text/html; charset=utf-8', ...h }).flat()
  t.equal(z.decide('GET', 200, rq, ans({})), 'gzip', 'unknown length: compressed')
  t.equal(z.decide('GET', 200, rq, ans({ 'content-length': '99' })), 'none', 'shorter than minBytes')
  t.equal(z.decide('GET', 200, rq, ans({ 'content-length': '100' })), 'gzip')
  t.equal(z.decide('GET', 200, rq, ans({ 'content-type': 'image/png' })), 'none', 'a type not listed')
  t.equal(z.decide('GET', 200, rq, ans({ 'content-type': 'Application/JSON' })), 'gzip')
  t.equal(z.decide('GET', 200, rq, ans({ 'content-type': 'text/event-stream' })), 'none', 'an event stream')
  t.equal(z.decide('GET', 200, rq, ans({ 'content-encoding': 'br' })), 'none', 'already encoded')
  t.equal(z.decide('GET', 200, rq, ans({ 'cache-control': 'public, no-transform' })), 'none', 'no-transform')
  t.equal(z.decide('GET', 200, [...rq, 'Range', 'bytes=0-1'], ans({})), 'none', 'a Range request')
  for (const s of [204, 206, 304]) t.equal(z.decide('GET', s, rq, ans({})), 'none', `${s}`)
  t.equal(z.decide('HEAD', 200, rq, ans({})), 'none', 'HEAD')
  t.equal(z.decide('GET', 200, [], ans({})), '', 'no accept-encoding: as it came, with vary')
})

t.test('compressed head: vary merged, ETag weak, content-length gone (property)', async (t) => {
  const name = fc.constantFrom('etag', 'ETag', 'vary', 'Vary', 'content-length', 'x-a', 'content-type')
  const value = fc.constantFrom('"abc"', 'W/"w"', 'origin', 'Accept-Encoding', '*', '12', 'text/plain')
  fc.assert(fc.property(fc.array(fc.tuple(name, value), { maxLength: 8 }), fc.constantFrom('gzip', 'br', ''), (hs, alg) => {
    const lines = hs.map(([n, v]) => `${n}: ${v}\r\n`).join('')
    const out = compressedLines(lines, alg as 'gzip' | 'br' | '').split('\r\n').filter((l) => l !== '').map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()] as const)
    const vary = out.filter(([n]) => n === 'vary')
    if (vary.length !== 1) return false
    const wanted = hs.filter(([n]) => n.toLowerCase() === 'vary').map(([, v]) => v.toLowerCase())
    const got = vary[0]![1].toLowerCase().split(',').map((s) => s.trim())
    if (!wanted.every((w) => got.includes(w)) || !(got.includes('accept-encoding') || got.includes('*'))) return false
    const count = (n: string): number => out.filter(([x]) => x === n).length
    if (alg === '') return count('content-length') === hs.filter(([n]) => n === 'content-length').length && count('content-encoding') === 0
    return count('content-length') === 0 && out.filter(([n]) => n === 'etag').every(([, v]) => v.startsWith('W/')) &&
      JSON.stringify(out.filter(([n]) => n === 'content-encoding')) === JSON.stringify([['content-encoding', alg]])
  }), { numRuns: 300 })
  t.pass('the property held')
})
