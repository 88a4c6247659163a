/**
 * proxy/headers withoutUnderscores against an oracle (a filter): any header list keeps exactly its
 * fields whose name has no `_`, in order, values with their names; a list without one is returned
 * as it is, not copied (the common request allocates nothing).
 */
import t from 'tap'
import fc from 'fast-check'
import { withoutUnderscores } from '../../src/data/http/headers.js'

t.test('exactly the fields without an underscore in the name, in order', async (t) => {
  const name = fc.stringMatching(/^[A-Za-z_-]{1,6}$/)
  fc.assert(fc.property(fc.array(fc.tuple(name, fc.string({ maxLength: 4 })), { maxLength: 20 }), (pairs) => {
    const raw = pairs.flat()
    const got = withoutUnderscores(raw)
    const want = pairs.filter(([n]) => !n.includes('_')).flat()
    if (JSON.stringify(got) !== JSON.stringify(want)) throw new Error(`${JSON.stringify(raw)}: got ${JSON.stringify(got)}`)
    if (want.length === raw.length && got !== raw) throw new Error('a list without underscores was copied')
  }), { numRuns: 500 })
  t.pass('500 random lists')
})
