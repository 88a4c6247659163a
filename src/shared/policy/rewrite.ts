/**
 * @module shared/policy/rewrite
 * A route's `rewrite: { pattern, replace }`: the path sent upstream, by a regular expression on the
 * path (the query is kept as it came). The first match is replaced; `{1}` … `{9}` in `replace` are
 * the pattern's groups, `{0}` the whole match (nginx's `rewrite … break` with $1, HAProxy's
 * `http-request replace-path`, Envoy's `regex_rewrite`).
 *
 * JavaScript's engine backtracks, and RE2 (linear time) is a native addon, which users could not
 * build without a compiler. So a pattern is checked at load with safe-regex2 (fastify's router uses
 * it): a pattern whose nested quantifiers make its star height above 1, such as `(a+)+`, is refused.
 * Its rule counts `?` as a quantifier, so `(/.*)?` is refused too (`(/.*|)` is the same language);
 * it does not see overlapping alternatives (`(a|a)*`), which README asks users to keep disjoint.
 */
import { safeRegex } from '../lazy-modules.js'
import { fill, parseTemplate, type Template } from './template.js'

export class Rewrite {
  private constructor (private readonly re: RegExp, private readonly replace: Template) {}

  /** the compiled rewrite, or what is wrong and under which key ('pattern' or 'replace') */
  static compile (r: { pattern: string, replace: string }): Rewrite | { key: 'pattern' | 'replace', problem: string } {
    let re: RegExp
    try {
      re = new RegExp(r.pattern)
    } catch (e) {
      return { key: 'pattern', problem: `not a regular expression: ${(e as Error).message}` }
    }
    if (!safeRegex()(re)) return { key: 'pattern', problem: `${JSON.stringify(r.pattern)} may backtrack catastrophically: a quantifier inside a quantified group (an optional group counts: write (/.*|) for (/.*)?)` }
    // a pattern that also matches '' through an extra branch tells its group count
    const groups = new RegExp(`${r.pattern}|`).exec('')!.length - 1
    const t = parseTemplate(r.replace, (n) => /^\d+$/.test(n) && Number(n) <= groups ? Number(n) : -1)
    if (typeof t === 'string') return { key: 'replace', problem: `${t} is not a group of the pattern (it has ${groups}; {0} is the whole match)` }
    return new Rewrite(re, t)
  }

  /** `target` (path and query) with its path rewritten; as it was when the pattern does not match */
  apply (target: string): string {
    const q = target.indexOf('?')
    const path = q < 0 ? target : target.slice(0, q)
    const m = this.re.exec(path)
    if (m === null) return target
    let out = path.slice(0, m.index) + fill(this.replace, m) + path.slice(m.index + m[0].length)
    if (out.charCodeAt(0) !== 47 /* / */) out = `/${out}`
    return q < 0 ? out : out + target.slice(q)
  }
}
