// claylb's dashboard: reads the primary's server-sent events (GET /dashboard/events) with fetch, so
// an admin token can go in a header, and draws every chart on a canvas (no library, no CDN).
const COLORS = ['#3569d6', '#d0342c', '#1f9d55', '#c98a00', '#7c4dcc', '#0f8fa3', '#d2568c', '#5b6b7f']
const CHARTS = [
  { id: 'chart-rps', at: 0, fmt: (v) => v.toFixed(v < 10 ? 1 : 0) },
  { id: 'chart-err', at: 1, fmt: (v) => `${(v * 100).toFixed(1)}%` },
  { id: 'chart-p50', at: 2, fmt: (v) => v.toFixed(v < 10 ? 1 : 0) },
  { id: 'chart-p99', at: 3, fmt: (v) => v.toFixed(v < 10 ? 1 : 0) },
]
const $ = (id) => document.getElementById(id)
const state = { by: 'pools', history: [], points: 300, intervalMs: 1000, last: null, colors: new Map(), ticks: 0 }
// for tests and the curious: what the page holds now
window.claylbDashboard = state

function color (name) {
  if (!state.colors.has(name)) state.colors.set(name, COLORS[state.colors.size % COLORS.length])
  return state.colors.get(name)
}

function el (tag, attrs = {}, ...children) {
  const e = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v
    else e.setAttribute(k, v)
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)))
  return e
}

function badge (s) { return el('span', { class: 'badge', 'data-state': s }, s) }

/** replace a table body's rows (the table keeps its place: no layout jump) */
function rows (id, list, empty) {
  const body = $(id).tBodies[0]
  body.replaceChildren(...(list.length > 0 ? list : [el('tr', {}, el('td', { class: 'empty', colspan: '9' }, empty))]))
}

function names () {
  const seen = new Set()
  for (const t of state.history) for (const n of Object.keys(t[state.by])) seen.add(n)
  return [...seen].sort()
}

function drawChart (c) {
  const fig = $(c.id)
  const canvas = fig.querySelector('canvas')
  const dpr = window.devicePixelRatio || 1
  const w = canvas.clientWidth
  const h = canvas.clientHeight
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr)
    canvas.height = Math.round(h * dpr)
  }
  const g = canvas.getContext('2d')
  g.setTransform(dpr, 0, 0, dpr, 0, 0)
  g.clearRect(0, 0, w, h)
  const hist = state.history
  const series = names()
  let max = 0
  for (const t of hist) for (const n of series) { const p = t[state.by][n]; if (p && p[c.at] !== null && p[c.at] > max) max = p[c.at] }
  if (c.at === 1) max = Math.max(max, 0.01)
  max = max === 0 ? 1 : niceMax(max)
  const left = 44
  const bottom = h - 16
  const top = 6
  const right = w - 6
  g.font = '11px system-ui, sans-serif'
  g.fillStyle = '#667085'
  g.strokeStyle = '#e3e6eb'
  g.lineWidth = 1
  for (let i = 0; i <= 3; i++) {
    const y = Math.round(bottom - (bottom - top) * i / 3) + 0.5
    g.beginPath(); g.moveTo(left, y); g.lineTo(right, y); g.stroke()
    g.textAlign = 'right'; g.textBaseline = 'middle'
    g.fillText(c.fmt(max * i / 3), left - 4, y)
  }
  // the span grows with the history, from one minute to all the points kept
  const now = hist.length > 0 ? hist[hist.length - 1].t : Date.now()
  const span = Math.min(state.points * state.intervalMs, Math.max(60_000, hist.length > 0 ? now - hist[0].t : 0))
  const x = (t) => left + (right - left) * (1 - (now - t) / span)
  g.textAlign = 'left'; g.textBaseline = 'alphabetic'
  g.fillText(span < 120_000 ? `-${Math.round(span / 1000)} s` : `-${Math.round(span / 60000)} min`, left, h - 2)
  g.textAlign = 'right'
  g.fillText('now', right, h - 2)
  const last = {}
  g.lineWidth = 1.6
  for (const n of series) {
    g.strokeStyle = color(n)
    g.beginPath()
    let pen = false
    let prev = 0
    for (const t of hist) {
      const p = t[state.by][n]
      const v = p ? p[c.at] : null
      // no request in the interval, or nobody watched (the feed pauses with no page open): a gap
      if (t.t - prev > 2.5 * state.intervalMs) pen = false
      prev = t.t
      if (v === null || v === undefined) { pen = false; continue }
      const px = x(t.t)
      const py = bottom - (bottom - top) * (v / max)
      if (pen) g.lineTo(px, py); else g.moveTo(px, py)
      pen = true
      last[n] = v
    }
    g.stroke()
  }
  // the values drawn last, for whoever checks the chart moves
  fig.dataset.last = JSON.stringify(last)
}

function niceMax (v) {
  const p = Math.pow(10, Math.floor(Math.log10(v)))
  for (const m of [1, 1.5, 2, 3, 5, 7.5, 10]) if (v <= m * p) return m * p
  return 10 * p
}

function fmtMs (v) { return v === null || v === undefined ? '–' : `${v} ms` }

function renderSeries () {
  const t = state.history[state.history.length - 1]
  const list = names().map((n) => {
    const p = t ? t[state.by][n] : undefined
    const sw = el('span', { class: 'swatch' })
    sw.style.background = color(n)
    const pool = state.by === 'pools' ? n : (state.last?.routePools?.[n] ?? '')
    return el('tr', { 'data-series': n }, el('td', {}, sw), el('td', {}, n), el('td', {}, pool),
      el('td', { class: 'n' }, p ? p[0].toFixed(1) : '–'), el('td', { class: 'n' }, p ? `${(p[1] * 100).toFixed(1)}%` : '–'),
      el('td', { class: 'n' }, fmtMs(p?.[2])), el('td', { class: 'n' }, fmtMs(p?.[3])))
  })
  rows('series', list, 'no traffic yet')
}

function renderState (s) {
  state.last = s
  $('generation').textContent = String(s.generation)
  const r = s.reloads
  $('reload').textContent = r.last === null ? 'none yet' : `${r.last.ok ? 'applied' : 'refused'} ${new Date(r.last.at).toLocaleTimeString()}${r.last.ok ? '' : `: ${r.last.reason}`}`
  $('reload').title = r.last?.reason ?? ''
  const panics = Object.entries(s.panic).filter(([, v]) => v !== 'off')
  $('panic').textContent = panics.length === 0 ? 'off' : panics.map(([p, v]) => `${p}: ${v}`).join(', ')
  $('errspan').textContent = `${s.recentErrorsSeconds} s`
  $('conn').title = s.tickError === null ? '' : `the last update failed: ${s.tickError}`
  rows('upstreams', s.upstreams.map((u) => el('tr', { 'data-upstream': `${u.pool}/${u.id}`, 'data-state': u.state },
    el('td', {}, u.pool), el('td', { title: u.url }, u.id), el('td', {}, badge(u.state)), el('td', { class: 'n' }, u.inflight),
    el('td', { class: 'n' }, u.recentErrors), el('td', { class: 'n' }, u.requests), el('td', { class: 'n' }, u.ejections))), 'no upstream')
  const ws = s.workerStats
  $('worker-stats').replaceChildren(...['recycles', 'restarts', 'crashes', 'rollouts', 'rollbacks'].flatMap((k, i) => [i > 0 ? ' · ' : '', `${k} `, el('b', { id: `workers-${k}` }, ws[k])]))
  rows('workers', s.workers.map((w) => el('tr', { 'data-worker': w.id, 'data-state': w.state },
    el('td', {}, w.id), el('td', { class: 'n' }, w.slot), el('td', { class: 'n' }, w.pid ?? '–'), el('td', { class: 'n' }, w.generation),
    el('td', {}, badge(w.state)), el('td', { class: 'n' }, w.requests ?? 0))), 'no spawned workers (workers.count: 0)')
  rows('processes', s.processes.map((p) => el('tr', { 'data-pid': p.pid }, el('td', {}, p.pid), el('td', { class: 'n' }, p.requests),
    el('td', { class: 'n' }, p.inflight), el('td', { class: 'n' }, p.connections), el('td', { class: 'n' }, p.snapshot))), 'none')
  const outcomes = Object.entries(s.idempotency).filter(([, v]) => v > 0)
  rows('idempotency', outcomes.map(([k, v]) => el('tr', {}, el('td', {}, k.replace(/_/g, ' ')), el('td', { class: 'n', 'data-outcome': k }, v))), 'none yet (idempotency.routes)')
  $('rate-limited-box').hidden = s.rateLimited === null
  if (s.rateLimited !== null) {
    rows('rate-limited', s.rateLimited.map((x) => el('tr', {}, el('td', {}, Object.entries(x.labels).map(([k, v]) => `${k}=${v}`).join(' ') || 'total'), el('td', { class: 'n' }, x.value))), 'none')
  }
}

function render () {
  for (const c of CHARTS) drawChart(c)
  renderSeries()
}

function onEvent (name, data) {
  if (name === 'init') {
    state.history = data.history
    state.points = data.points
    state.intervalMs = data.intervalMs
    $('span').textContent = `last ${Math.round(data.points * data.intervalMs / 60000)} min, a point every ${data.intervalMs / 1000} s`
    renderState(data.state)
    document.querySelector('main').classList.remove('waiting')
  } else if (name === 'tick') {
    state.history.push(data.tick)
    if (state.history.length > state.points) state.history.shift()
    renderState(data.state)
  }
  state.ticks++
  render()
}

function setConn (s) { const c = $('conn'); c.dataset.state = s; c.textContent = s }

async function connect () {
  const token = sessionStorage.getItem('claylb-admin-token')
  setConn('connecting')
  let res
  try {
    res = await fetch('/dashboard/events', { headers: token ? { authorization: `Bearer ${token}` } : {}, cache: 'no-store' })
  } catch {
    return retry()
  }
  if (res.status === 401) {
    setConn('closed')
    $('login').hidden = false
    $('login-error').textContent = token ? 'that token was refused' : ''
    return
  }
  if (!res.ok || res.body === null) return retry()
  $('login').hidden = true
  setConn('live')
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader()
  let buf = ''
  for (;;) {
    let r
    try { r = await reader.read() } catch { break }
    if (r.done) break
    buf += r.value
    let end
    while ((end = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, end)
      buf = buf.slice(end + 2)
      let event = 'message'
      let data = ''
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) event = line.slice(7)
        else if (line.startsWith('data: ')) data += line.slice(6)
      }
      if (data !== '') onEvent(event, JSON.parse(data))
    }
  }
  retry()
}

function retry () {
  setConn('closed')
  setTimeout(connect, 2000)
}

$('login').addEventListener('submit', (e) => {
  e.preventDefault()
  sessionStorage.setItem('claylb-admin-token', $('token').value)
  connect()
})
for (const b of document.querySelectorAll('.tabs button')) {
  b.addEventListener('click', () => {
    state.by = b.dataset.by
    for (const x of document.querySelectorAll('.tabs button')) x.setAttribute('aria-selected', String(x === b))
    render()
  })
}
window.addEventListener('resize', render)
connect()
