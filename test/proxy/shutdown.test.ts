import t from 'tap'
import { startBackend } from '../helpers/backend.js'
import { startClaylb } from '../helpers/claylb.js'
import { req, sleep } from '../helpers/http.js'

t.test('SIGTERM during 50 in-flight slow requests: all 50 complete, then exit 0', async (t) => {
  let arrived = 0
  const slow = await startBackend((req, res) => {
    arrived++
    req.resume()
    setTimeout(() => res.end(`done ${req.url}`), 1500)
  })
  const lb = await startClaylb({ args: ['--upstream', slow.url] })
  t.teardown(async () => { await lb.stop('SIGKILL'); await slow.close() })
  const inflight = Array.from({ length: 50 }, (_, i) => req(`${lb.url}/r${i}`))
  while (arrived < 50) await sleep(20)
  lb.proc.kill('SIGTERM')
  await lb.waitForLog((l) => l['msg'] === 'draining')
  // new connections are refused while draining
  await t.rejects(req(`${lb.url}/late`), 'a new connection is refused after SIGTERM')
  const results = await Promise.all(inflight)
  t.same(results.map((r) => r.status), Array(50).fill(200), 'all 50 answered 200')
  t.equal(results.filter((r, i) => r.body === `done /r${i}`).length, 50, 'each got its own answer')
  t.equal(await lb.exited, 0, 'exit code 0')
})

t.test('SIGINT with nothing in flight exits 0 at once', async (t) => {
  const be = await startBackend()
  const lb = await startClaylb({ args: ['--upstream', be.url] })
  t.teardown(() => be.close())
  const started = Date.now()
  t.equal(await lb.stop('SIGINT'), 0)
  t.ok(Date.now() - started < 3000)
})

t.test('a reader of stdout that went away does not keep claylb from exiting (EPIPE)', async (t) => {
  const be = await startBackend()
  const lb = await startClaylb({ args: ['--upstream', be.url] })
  t.teardown(async () => { await lb.stop('SIGKILL'); await be.close() })
  lb.proc.stdout!.destroy()
  for (let i = 0; i < 5; i++) t.equal((await req(`${lb.url}/x${i}`)).status, 200)
  await sleep(1200) // the access log's batch is written (and fails) in between
  const started = Date.now()
  lb.proc.kill('SIGTERM')
  const code = await Promise.race([lb.exited, sleep(8000).then(() => 'still running')])
  t.equal(code, 0, `exited after ${Date.now() - started} ms`)
})
