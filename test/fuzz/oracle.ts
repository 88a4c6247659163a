/**
 * The fuzzer's oracle: what the clients and the upstream observed, judged against the model
 * (test/fuzz/model). Three properties, each violation one line:
 *  1. the upstream received exactly the clients' requests (as the model rewrites them), in order per
 *     client connection, each as often as its script allows;
 *  2. each client received, parsed strictly, exactly the answers to its own requests, in order, as
 *     the model rewrites them; a connection ends early only after an answer that says so and may;
 *  3. no byte marked with one request's id appears in another request or answer.
 */
import { expectedAnswer, forwardedRequest, PROXY_ADDED, type ExpectedAnswer, type Expectation, type Peer } from './model.js'
import { markersIn, type Version } from './scenario.js'
import type { ClientRun, Observation, Played } from './run.js'
import type { Received } from './upstream.js'
import { fieldValues, takeAnswers, type Answer, type Message } from './wire.js'

const show = (v: unknown): string => JSON.stringify(v)
const FRAMING = new Set(['content-length', 'transfer-encoding', 'connection'])

function messageText (m: Message): string {
  return [m.target, m.reason, ...m.headers.flat(), m.body, ...m.trailers.flat()].join('\n')
}

/** property 3 for one message: every marker in it is `id`'s */
function foreignMarkers (m: Message, id: number): number[] {
  return [...new Set(markersIn(messageText(m)))].filter((n) => n !== id)
}

/** property 1 for one received request: the model's rewrite of what the client sent */
function judgeReceived (rec: Received, p: Played, version: Version, peer: Peer): string[] {
  const want = forwardedRequest(p.spec, p.id, version, peer)
  const where = `request ${p.id} (${p.spec.method}) at the upstream`
  if (want === undefined) return [`${where}: forwarded, but claylb must refuse it itself`]
  const m = rec.msg
  const out: string[] = []
  if (m.method !== want.method) out.push(`${where}: method ${show(m.method)}, want ${show(want.method)}`)
  if (m.target !== want.target) out.push(`${where}: target ${show(m.target)}, want ${show(want.target)}`)
  if (m.version !== 'HTTP/1.1') out.push(`${where}: version ${m.version}, want HTTP/1.1`)
  const rest = m.headers.filter(([n]) => {
    const lower = n.toLowerCase()
    return lower !== 'host' && lower !== 'transfer-encoding' && !PROXY_ADDED.includes(lower)
  })
  if (show(rest) !== show(want.fields)) out.push(`${where}: fields ${show(rest)}, want ${show(want.fields)}`)
  const hosts = fieldValues(m.headers, 'host')
  if (show(hosts) !== show([want.host])) out.push(`${where}: host ${show(hosts)}, want ${show([want.host])}`)
  for (const name of PROXY_ADDED) {
    const got = fieldValues(m.headers, name)
    const w = want.added[name]
    if (show(got) !== show(w === undefined ? [] : [w])) out.push(`${where}: ${name} ${show(got)}, want ${show(w === undefined ? [] : [w])}`)
  }
  if ((m.framing === 'chunked') !== want.chunked) out.push(`${where}: framing ${m.framing}, want ${want.chunked ? 'chunked' : 'content-length or none'}`)
  if (m.body !== want.body) out.push(`${where}: body ${show(m.body)}, want ${show(want.body)}`)
  if (m.trailers.length > 0) out.push(`${where}: trailers ${show(m.trailers)} (request trailers are not forwarded)`)
  return out
}

/** how one received answer differs from one the model allows ([] when it is that one) */
function answerDiff (got: Answer, want: ExpectedAnswer, version: Version, head: boolean): string[] {
  const f = got.final
  const out: string[] = []
  if (want.kind === 'problem') {
    if (f.status !== want.status) return [`status ${f.status} ${show(f.reason)}, want the ${want.status} problem ${want.type}`]
    if (!/^application\/problem\+json/.test(fieldValues(f.headers, 'content-type')[0] ?? '')) out.push(`${want.status} is not problem+json`)
    // README: the answer to a HEAD request is its head alone (RFC 9110 §9.3.2), a problem's too
    else if (head) {
      if (f.body !== '') out.push(`a body after the head of a HEAD answer: ${show(f.body)}`)
    } else {
      let type: unknown
      try { type = (JSON.parse(f.body) as { type?: unknown }).type } catch { type = undefined }
      if (type !== want.type) out.push(`problem type ${show(type)}, want ${want.type}`)
    }
    return out
  }
  const interim = got.interim.filter((i) => version === '1.0' || i.status !== 100).map((i) => ({ status: i.status, fields: i.headers }))
  // HTTP/2 interim answers are not modelled (see model.ts)
  if (version !== '2' && show(interim) !== show(want.interim)) out.push(`interim ${show(interim)}, want ${show(want.interim)}`)
  if (f.status !== want.status || f.reason !== want.reason) out.push(`status ${f.status} ${show(f.reason)}, want ${want.status} ${show(want.reason)}`)
  // node:http2's server adds `date` to every HTTP/2 answer
  const fields = f.headers.filter(([n]) => !FRAMING.has(n.toLowerCase()) && !(version === '2' && n === 'date'))
  if (show(fields) !== show(want.fields)) out.push(`fields ${show(fields)}, want ${show(want.fields)}`)
  if (f.body !== want.body) out.push(`body ${show(f.body)}, want ${show(want.body)}`)
  if (f.trailers.length > 0) out.push(`trailers ${show(f.trailers)} (response trailers are not forwarded)`)
  const cl = fieldValues(f.headers, 'content-length')
  const te = fieldValues(f.headers, 'transfer-encoding')
  // ASSUMPTION (being fixed): RFC 9110 §8.6 / RFC 9112 §6.1, a 204 carries neither
  if (f.status === 204 && (cl.length > 0 || te.length > 0)) out.push(`204 with ${show([...cl, ...te])}`)
  if (version === '1.0' && te.length > 0) out.push('transfer-encoding to an HTTP/1.0 client')
  if (want.noBody && want.declaredLength !== undefined && cl.length > 0 && cl[0] !== want.declaredLength) out.push(`content-length ${cl[0]}, want ${want.declaredLength}`)
  return out
}

/** the answer says the connection ends after it */
function saysClose (a: Answer, version: Version): boolean {
  const tokens = fieldValues(a.final.headers, 'connection').join(',').toLowerCase().split(',').map((t) => t.trim())
  return tokens.includes('close') || (version === '1.0' && !tokens.includes('keep-alive'))
}

/** properties 2 and 3 for one answer: one the model allows, its request delivered as often as that answer says, no foreign bytes */
function judgeAnswer (where: string, r: Played, a: Answer, counts: Map<number, number>, version: Version): string[] {
  const out: string[] = []
  if (!r.aborted) {
    const exp: Expectation = expectedAnswer(r.spec, r.id, version)
    const n = counts.get(r.id) ?? 0
    const diffs = exp.options.map((o) => answerDiff(a, o.answer, version, r.spec.method === 'HEAD'))
    // every option the answer fits (two may look alike: a 502 after one try, or after a retry whose answer broke)
    const fits = exp.options.filter((_, i) => diffs[i]!.length === 0)
    if (fits.length === 0) out.push(`${where}: request ${r.id} (${r.spec.method}) answered wrong: ${diffs.map((d) => d.join('; ')).join(' | or | ')}`)
    else if (!fits.some((o) => n <= o.deliveries && n >= Math.min(o.deliveries, exp.minDeliveries))) {
      const want = fits.map((o) => { const least = Math.min(o.deliveries, exp.minDeliveries); return least === o.deliveries ? `${o.deliveries}` : `${least}–${o.deliveries}` })
      out.push(`${where}: request ${r.id} (${r.spec.method}) reached the upstream ${n} times, want ${want.join(' or ')}`)
    }
  }
  for (const m of [...a.interim, a.final]) {
    const foreign = foreignMarkers(m, r.id)
    if (foreign.length > 0) out.push(`${where}: the answer to request ${r.id} carries bytes of request(s) ${foreign.join(', ')}: ${show(m.headers)} ${show(m.body.slice(0, 200))}`)
  }
  return out
}

/** properties 2 and 3 for an HTTP/2 session: each stream's answer */
function judgeH2 (where: string, run: ClientRun, counts: Map<number, number>): string[] {
  const out: string[] = []
  run.reqs.forEach((r, i) => {
    const st = run.streams[i]
    if (st === undefined) return
    if (st.error !== undefined && !r.aborted) out.push(`${where}: request ${r.id} (${r.spec.method}): ${st.error}`)
    if (st.error !== undefined || (r.aborted && st.status === 0)) return
    const message = (status: number, headers: Message['headers']): Message =>
      ({ method: '', target: '', version: 'HTTP/2', status, reason: '', headers, body: '', trailers: [], framing: 'none' })
    const final = { ...message(st.status, st.headers), body: st.body, trailers: st.trailers }
    out.push(...judgeAnswer(where, r, { interim: st.interim.map((m) => message(m.status, m.headers)), final }, counts, '2'))
  })
  return out
}

/** properties 2 and 3 for one client connection; `counts`: upstream deliveries per id */
function judgeClient (k: number, run: ClientRun, counts: Map<number, number>, waitMs: number): string[] {
  const out: string[] = []
  const where = `client ${k} (HTTP/${run.version}${run.pipelined ? ', pipelined' : ''})`
  if (run.version === '2') return judgeH2(where, run, counts)
  const parsed = takeAnswers(run.raw, run.reqs.map((r) => r.spec.method), run.closed)
  if (parsed.error !== undefined) out.push(`${where}: unparsable answer: ${parsed.error}; received ${show(run.raw.slice(0, 2000))}`)
  const aborted = run.reqs.findIndex((r) => r.aborted)
  const expected = aborted >= 0 ? aborted + 1 : run.reqs.length
  const { answers } = parsed
  if (answers.length > expected) out.push(`${where}: ${answers.length} answers to ${expected} requests`)
  let closedAt = -1
  answers.forEach((a, i) => {
    const r = run.reqs[i]
    if (r === undefined) return
    if (run.version === '1.0' && a.interim.length > 0) out.push(`${where}: request ${r.id}: interim ${show(a.interim.map((m) => m.status))} to an HTTP/1.0 client`)
    out.push(...judgeAnswer(where, r, a, counts, run.version))
    if (r.aborted) return
    if (saysClose(a, run.version) && closedAt < 0) closedAt = i
    if (!expectedAnswer(r.spec, r.id, run.version).mayClose && closedAt === i && i < answers.length - 1) out.push(`${where}: request ${r.id}: answer says connection: close but more followed`)
  })
  const foreignRest = markersIn(parsed.rest)
  if (parsed.error === undefined && parsed.rest !== '') out.push(`${where}: ${parsed.rest.length} bytes after the last whole answer${foreignRest.length > 0 ? ` (marked ${foreignRest.join(', ')})` : ''}: ${show(parsed.rest.slice(0, 300))}`)
  if (answers.length < expected && aborted < 0 && parsed.error === undefined) {
    const i = answers.length
    const r = run.reqs[i]!
    if (!run.closed) out.push(`${where}: no answer to request ${r.id} (${r.spec.method}) within ${waitMs} ms${run.stalled !== undefined ? ` (waiting for ${run.stalled})` : ''}`)
    else if (i === 0) out.push(`${where}: closed without answering request ${r.id}`)
    else {
      const last = answers[i - 1]!
      const prev = run.reqs[i - 1]!
      if (!expectedAnswer(prev.spec, prev.id, run.version).mayClose) out.push(`${where}: closed after request ${prev.id} (${prev.spec.method}), leaving request ${r.id} unanswered`)
      else if (!saysClose(last, run.version)) out.push(`${where}: closed after request ${prev.id} without saying connection: close`)
    }
    // README: nothing pipelined behind an answer that closes the connection runs
    for (const u of run.reqs.slice(i)) if ((counts.get(u.id) ?? 0) > 0 && !u.aborted) out.push(`${where}: request ${u.id} reached the upstream but was never answered`)
  }
  return out
}

/** Every violation of the three properties in one run ([] when none). */
export function judge (obs: Observation, peer: Peer, waitMs: number): string[] {
  const out = obs.upstreamErrors.map((e) => `the upstream could not parse what claylb sent: ${e}`)
  const byId = new Map<number, { p: Played, run: ClientRun }>()
  for (const run of obs.clients) for (const p of run.reqs) byId.set(p.id, { p, run })
  const counts = new Map<number, number>()
  const first = Math.min(...byId.keys())
  for (const rec of obs.upstream) {
    // a request of an earlier run that already failed (a client that stalled, its queue forwarded late) is that run's
    if (rec.id !== undefined && rec.id < first) continue
    const known = rec.id === undefined ? undefined : byId.get(rec.id)
    if (known === undefined) {
      out.push(`the upstream received a request no client sent: ${rec.msg.method} ${rec.msg.target} ${show(rec.msg.headers)}`)
      continue
    }
    counts.set(rec.id!, (counts.get(rec.id!) ?? 0) + 1)
    out.push(...judgeReceived(rec, known.p, known.run.version, peer))
    const foreign = foreignMarkers(rec.msg, rec.id!)
    if (foreign.length > 0) out.push(`request ${rec.id} at the upstream carries bytes of request(s) ${foreign.join(', ')}`)
  }
  obs.clients.forEach((run, k) => {
    out.push(...judgeClient(k, run, counts, waitMs))
    // order: a connection's requests reach the upstream in the order sent (README: one after another);
    // HTTP/2 streams sent at once are concurrent, in no order
    if (run.version === '2' && run.pipelined) return
    // a stream the HTTP/2 client cancelled was not waited for: the next one is concurrent with it (a
    // POST on a fresh upstream connection may arrive after a GET on a pooled one); HTTP/1.x cannot
    // go on after its abort
    const ordered = run.version === '2' ? run.reqs.filter((p) => !p.aborted) : run.reqs
    const firsts = ordered.map((p) => obs.upstream.findIndex((rec) => rec.id === p.id)).filter((i) => i >= 0)
    if (firsts.some((v, i) => i > 0 && v < firsts[i - 1]!)) out.push(`client ${k}: its requests reached the upstream out of order`)
  })
  return out
}
