/**
 * The admin dashboard in a real browser: Playwright (playwright-core) driving the Debian Chromium
 * (/usr/bin/chromium, apt package `chromium`). Two proxy processes, two upstreams and a worker; the
 * page must render, log in with the admin token (admin.protectReads), show its charts moving while
 * requests flow, show an upstream killed during the test as unhealthy, and count a worker recycle.
 * Every wait is for something the page shows (an SSE update), never a fixed time.
 * CLAYLB_DASHBOARD_SCREENSHOT=1 also saves the README's screenshot (src/control/dashboard/screenshot.png).
 */
import t from 'tap'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { startBackend, type Handler } from '../helpers/backend.js'
import { startClaylb, ROOT } from '../helpers/claylb.js'
import { req } from '../helpers/http.js'

// the page's globals, in the functions Playwright runs there (the tests are typed without the DOM
// library; and the page's CSP forbids eval, so predicates are functions, never strings)
declare const window: any // eslint-disable-line @typescript-eslint/no-explicit-any
declare const document: any // eslint-disable-line @typescript-eslint/no-explicit-any

const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium'
if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install chromium (Debian), or set CHROMIUM_PATH`)
const { chromium } = await import('playwright-core')

const TOKEN = 'dash-s3cret'
const auth = { authorization: `Bearer ${TOKEN}` }
const answer = (name: string): Handler => (q, s) => {
  q.resume()
  // some 5xx and some latency spread, so every chart has something to draw
  s.statusCode = (q.url ?? '').includes('/fail') ? 500 : 200
  setTimeout(() => s.end(name), Math.floor(Math.random() * 8))
}

t.test('the dashboard: renders, logs in, charts move under load, an upstream dies, a worker recycles', async (t) => {
  const a = await startBackend(answer('a'))
  const b = await startBackend(answer('b'))
  t.teardown(async () => { await a.close(); await b.close() })
  const lb = await startClaylb({
    config: {
      listen: { processes: 2 },
      log: { access: false },
      admin: { token: TOKEN, protectReads: true },
      workers: { count: 1 },
      healthCheck: { intervalMs: 200, unhealthyThreshold: 1, timeoutMs: 500 },
      upstreams: [{ url: a.url, id: 'a' }, { url: b.url, id: 'b' }],
      routes: [{ name: 'app', match: { pathPrefix: '/app' }, pool: 'workers' }],
    },
  })
  t.teardown(() => lb.stop())
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] })
  let loading = true
  t.teardown(async () => { loading = false; await browser.close() })

  // protected like /status: the page is an empty shell anyone may load, its data needs the token
  t.equal((await req(`${lb.admin}/dashboard/events`)).status, 401, 'the event stream without the token: 401')
  t.equal((await req(`${lb.admin}/status`)).status, 401, 'as /status')
  const shell = await req(`${lb.admin}/dashboard`)
  t.equal(shell.status, 200)
  t.match(String(shell.headers['content-security-policy']), /default-src 'none'/, 'the page may load nothing from elsewhere')
  t.notMatch(shell.body, /https?:\/\//, 'no external asset')
  let bundle = shell.body.length
  for (const f of ['dashboard.js', 'dashboard.css']) bundle += (await req(`${lb.admin}/dashboard/assets/${f}`)).body.length
  t.equal((await req(`${lb.admin}/dashboard/assets/..%2F..%2Fpackage.json`)).status, 404, 'only the page\'s own files are served')
  t.comment(`page bundle: ${bundle} bytes (html + js + css, uncompressed)`)

  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
  // layout shifts as the browser measures them (CLS): the page must not jump as data arrives
  // an init script is added as source text (before the page's CSP applies)
  await page.addInitScript(`window.cls = 0
    new PerformanceObserver((l) => { for (const e of l.getEntries()) if (!e.hadRecentInput) window.cls += e.value }).observe({ type: 'layout-shift', buffered: true })`)
  const ticks = (): Promise<number> => page.evaluate(() => window.claylbDashboard.ticks)
  const ticksReach = (m: number): Promise<unknown> => page.waitForFunction((n) => window.claylbDashboard.ticks >= n, m)
  const errors: string[] = []
  page.on('pageerror', (e) => errors.push(e.message))
  // (the browser logs the stream's first, tokenless 401 as an error: that one is expected)
  page.on('console', (m) => { if (m.type() === 'error' && !m.text().includes('401')) errors.push(m.text()) })
  await page.goto(`${lb.admin}/dashboard`)
  await page.waitForSelector('#login:not([hidden])')
  t.equal(await page.textContent('#conn'), 'closed', 'without a token: the login form, no data')
  await page.fill('#token', TOKEN)
  const t0 = Date.now()
  await page.click('#login button')
  await page.waitForSelector('#conn[data-state="live"]')
  await ticksReach(1)
  t.comment(`first data on the page ${Date.now() - t0} ms after the token was given`)
  const nav = await page.evaluate(() => window.performance.getEntriesByType('navigation')[0].loadEventEnd as number)
  t.comment(`page load (loadEventEnd): ${Math.round(nav)} ms`)
  t.equal(await page.locator('#upstreams tr[data-upstream="default/a"]').getAttribute('data-state'), 'healthy')
  t.equal(await page.locator('#processes tbody tr[data-pid]').count(), 2, 'both proxy processes listed')

  // load through both processes, until the test ends
  const load = (async () => {
    let i = 0
    while (loading) {
      const path = ['/x', '/fail', '/app/y', '/z'][i++ % 4]!
      await req(`${lb.url}${path}`).catch(() => {})
    }
  })()

  // the charts move: their drawn values change from one SSE update to another while requests flow
  const lastValues = (): Promise<string> => page.evaluate(() => ['rps', 'err', 'p50', 'p99'].map((c) => document.getElementById(`chart-${c}`).dataset.last ?? '').join('|'))
  await page.waitForFunction(() => JSON.parse(document.getElementById('chart-rps').dataset.last ?? '{}').default > 0)
  const before = await lastValues()
  const n = await ticks()
  let changed = false
  for (let k = 1; k <= 10 && !changed; k++) {
    await ticksReach(n + k)
    changed = (await lastValues()) !== before
  }
  t.ok(changed, 'the charts\' values changed between SSE updates under load')
  const rps = JSON.parse((await page.locator('#chart-rps').getAttribute('data-last'))!) as Record<string, number>
  t.ok(rps['default']! > 0 && rps['workers']! > 0, 'both pools have a request rate')
  const err = JSON.parse((await page.locator('#chart-err').getAttribute('data-last'))!) as Record<string, number>
  t.ok(err['default']! > 0, 'the /fail requests show as a 5xx ratio')
  await page.click('.tabs button[data-by="routes"]')
  await page.waitForSelector('#series tr[data-series="app"]')
  t.ok(await page.locator('#series tr[data-series="default"]').count() === 1, 'by route: the named route and the default one')

  // an upstream killed during the test turns unhealthy on the page
  await b.close()
  await page.waitForSelector('#upstreams tr[data-upstream="default/b"]:is([data-state="unhealthy"], [data-state="ejected"])')
  t.pass('b shows unhealthy')

  // a worker recycle (admin API) is counted and its replacement listed
  const st = JSON.parse((await req(`${lb.admin}/status`, { headers: auth })).body) as { workers: Array<{ id: string }> }
  const w = st.workers[0]!.id
  t.equal((await req(`${lb.admin}/workers/${w}/recycle`, { method: 'POST', headers: auth })).status, 202)
  await page.waitForSelector('#workers-recycles:text("1")')
  await page.waitForFunction((old) => [...document.querySelectorAll('#workers tr[data-worker]')].some((r) => r.dataset.worker !== old && r.dataset.state === 'ready'), w)
  t.pass('the recycle is counted and the replacement is ready on the page')

  // a reload: the generation and its result on the page
  t.equal((await req(`${lb.admin}/reload`, { method: 'POST', headers: auth })).status, 200)
  await page.waitForSelector('#reload:text-matches("^applied")')
  await page.waitForSelector('#generation:text("2")')
  t.pass('the reload applied and the new generation are shown')

  const cls = await page.evaluate(() => window.cls as number)
  t.comment(`cumulative layout shift: ${cls.toFixed(4)}`)
  t.ok(cls < 0.1, `no layout jumps (CLS ${cls.toFixed(4)} < 0.1, "good" by web.dev)`)
  if (process.env['CLAYLB_DASHBOARD_SCREENSHOT'] !== undefined) {
    await page.click('.tabs button[data-by="pools"]')
    await page.screenshot({ path: join(ROOT, 'src', 'control', 'dashboard', 'screenshot.png'), fullPage: true })
  }

  // on a phone: one column, nothing wider than the screen
  await page.setViewportSize({ width: 390, height: 844 })
  await ticksReach((await ticks()) + 1)
  t.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'no horizontal scrolling at 390 px')
  t.same(errors, [], 'no script error in the page')
  loading = false
  await load
})
