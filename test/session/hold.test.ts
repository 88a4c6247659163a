/**
 * session/hold: a response held at its first byte while the session saves. An `end` the app makes
 * while that first save is still running must go through the end gate too (the bug: under load the
 * start's save outlasted the app, the end rode along with the held writes, and a change made after the
 * first byte was never saved). Driven by promises the test resolves, so the order is fixed, not raced.
 */
import t, { type Test } from 'tap'
import http, { type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { holdResponse } from '../../src/app-side/session/hold.js'

interface Deferred { promise: Promise<void>, resolve: () => void }
function deferred (): Deferred {
  let resolve!: () => void
  const promise = new Promise<void>((r) => { resolve = r })
  return { promise, resolve }
}

async function serve (t: Test, handler: (res: ServerResponse) => void): Promise<string> {
  const server = http.createServer((_req, res) => handler(res))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/`
}

t.test('an end made while the start is held waits for its own gate', async (t) => {
  const phases: string[] = []
  const start = deferred()
  const end = deferred()
  const url = await serve(t, (res) => {
    holdResponse(res, (phase) => {
      phases.push(phase)
      return phase === 'start' ? start.promise : end.promise
    }, () => { res.statusCode = 503; res.end() })
    res.write('a')
    res.write('b')
    res.end('c')
    // the app is done; the start's save is still running
    setImmediate(() => {
      t.same(phases, ['start'], 'only the start gate so far')
      start.resolve()
      setImmediate(() => {
        t.same(phases, ['start', 'end'], 'the end went through its gate once the start was through')
        t.equal(res.writableEnded, false, 'the end is held until the end gate is through')
        end.resolve()
      })
    })
  })
  const r = await fetch(url)
  t.equal(await r.text(), 'abc', 'every byte, in order')
  t.same(phases, ['start', 'end'])
})

t.test('no work at the end: the end goes out at once', async (t) => {
  const phases: string[] = []
  const start = deferred()
  const url = await serve(t, (res) => {
    holdResponse(res, (phase) => { phases.push(phase); return phase === 'start' ? start.promise : undefined }, () => {})
    res.write('a')
    res.end('b')
    setImmediate(() => start.resolve())
  })
  const r = await fetch(url)
  t.equal(await r.text(), 'ab')
  t.same(phases, ['start', 'end'])
})

t.test('a failing start gate: nothing held goes out, the failure answers', async (t) => {
  const url = await serve(t, (res) => {
    holdResponse(res, (phase) => phase === 'start' ? Promise.reject(new Error('down')) : undefined, () => { res.statusCode = 503; res.end('unavailable') })
    res.write('a')
    res.end('b')
  })
  const r = await fetch(url)
  t.equal(r.status, 503)
  t.equal(await r.text(), 'unavailable')
})
