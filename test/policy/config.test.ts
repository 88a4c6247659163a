/**
 * rateLimits and access: bad input is a config error naming its path, never a crash.
 */
import t from 'tap'
import { configProblems } from '../helpers/config.js'
import { cidrProblem } from '../../src/shared/config/policy.js'

const up = { upstreams: [{ url: 'http://127.0.0.1:1' }] }

t.test('a valid rateLimits and access config loads', async (t) => {
  t.same(configProblems({
    ...up,
    rateLimits: [
      { name: 'api', match: { pathPrefix: '/api', methods: ['POST'] }, key: 'header:X-Api-Key', rate: '6000/m', burst: 20, scope: 'local' },
      { name: 'all', rate: '100/s' },
      { name: 'login', key: 'cookie:sid', rate: '5/h', onStateDown: 'deny' },
      { name: 'one', key: 'route', rate: '1/s' },
    ],
    access: [{ match: { pathPrefix: '/admin' }, allow: ['10.0.0.0/8', 'fd00::/8', '192.0.2.7'], deny: ['10.1.0.0/16'] }],
  }), [])
})

t.test('each bad value is reported with its path', async (t) => {
  const problems = configProblems({
    ...up,
    rateLimits: [
      { name: 'a', key: 'query:x', rate: '10/s' },
      { name: 'b', rate: '0/s' },
      { name: 'c', rate: '10/d' },
      { name: 'a', rate: '10/s', burst: -1, scope: 'everywhere', onStateDown: 'maybe' },
      { name: 'e', rate: '1/s', match: { pathPrefix: 'x' }, limit: 3 },
    ],
  })
  const has = (re: RegExp): void => { t.ok(problems.some((p) => re.test(p)), `${re} in ${JSON.stringify(problems)}`) }
  has(/^rateLimits\.0\.key: must be ip, route, header:NAME or cookie:NAME/)
  has(/^rateLimits\.1\.rate: must be a rate above 0/)
  has(/^rateLimits\.2\.rate: must be a rate above 0/)
  has(/^rateLimits\.3\.burst: must be a non-negative integer/)
  has(/^rateLimits\.3\.scope: must be "global"/)
  has(/^rateLimits\.3\.onStateDown: must be "allow" or "deny"/)
  has(/^rateLimits\.4\.match\.pathPrefix: must start with \//)
  has(/^rateLimits\.4\.limit: unknown key/)
})

t.test('access: a CIDR with host bits, one that does not parse, a rule without lists', async (t) => {
  const problems = configProblems({
    ...up,
    access: [
      { allow: ['10.0.0.1/8'] },
      { deny: ['2001:db8::1/32', 'nonsense', '10.0.0.0/33'] },
      {},
    ],
  })
  const has = (re: RegExp): void => { t.ok(problems.some((p) => re.test(p)), `${re} in ${JSON.stringify(problems)}`) }
  has(/^access\[0\]\.allow\[0\]: 10\.0\.0\.1\/8 has host bits set: the network is 10\.0\.0\.0\/8/)
  has(/^access\[1\]\.deny\[0\]: 2001:db8::1\/32 has host bits set: the network is 2001:db8::\/32/)
  has(/^access\[1\]\.deny\[1\]: must be a CIDR/)
  has(/^access\[1\]\.deny\[2\]: must be a CIDR/)
  has(/^access\[2\]: needs allow or deny/)
})

t.test('a name given twice is refused (it labels a metric and names a bucket)', async (t) => {
  t.match(configProblems({ ...up, rateLimits: [{ name: 'x', rate: '1/s' }, { name: 'x', rate: '2/s' }] }), [/^rateLimits\[1\]\.name: "x" is already the name of rateLimits\[0\]/])
})

t.test('cidrProblem: host bits, IPv4, IPv6 and v4-mapped forms', async (t) => {
  t.equal(cidrProblem('10.0.0.0/8'), undefined)
  t.equal(cidrProblem('10.0.0.1'), undefined)
  t.equal(cidrProblem('0.0.0.0/0'), undefined)
  t.equal(cidrProblem('::/0'), undefined)
  t.equal(cidrProblem('::ffff:10.0.0.0/104'), undefined)
  t.match(cidrProblem('::ffff:10.0.0.1/104'), /host bits/)
  t.equal(cidrProblem('fe80::/10'), undefined)
  t.match(cidrProblem('fe80::1/64'), /the network is fe80::\/64/)
  t.match(cidrProblem('192.168.1.128/24'), /the network is 192\.168\.1\.0\/24/)
})
