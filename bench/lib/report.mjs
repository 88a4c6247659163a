/**
 * Summaries of a run: medians and ratios measured in the same run, a text table, and an SVG bar chart
 * (a small template: no chart library for a dozen bars).
 */

export function median (xs) {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  if (s.length === 0) return NaN
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}

/** rows: [{ id, label, samples: [{ cpuUsPerReq, rps, p50Ms, p99Ms, errors, requests, proxyCpuShare }] }] */
export function summarise (rows) {
  const out = rows.map((r) => {
    const cpu = r.samples.map((s) => s.cpuUsPerReq)
    return {
      id: r.id,
      label: r.label,
      short: r.short ?? r.label,
      version: r.version,
      cpuUsPerReq: median(cpu),
      cpuMin: Math.min(...cpu),
      cpuMax: Math.max(...cpu),
      rps: median(r.samples.map((s) => s.rps)),
      p50Ms: median(r.samples.map((s) => s.p50Ms)),
      p99Ms: median(r.samples.map((s) => s.p99Ms)),
      proxyCpuShare: median(r.samples.map((s) => s.proxyCpuShare)),
      runqWaitShare: median(r.samples.map((s) => s.runqWaitShare)),
      errors: r.samples.reduce((a, s) => a + s.errors, 0),
      requests: r.samples.reduce((a, s) => a + s.requests, 0),
      samples: r.samples,
    }
  })
  const by = Object.fromEntries(out.map((r) => [r.id, r]))
  for (const r of out) {
    // the TLS scenario compares with nginx serving TLS too
    const nginx = by.nginx ?? by['nginx-tls']
    r.vsNginx = nginx ? r.cpuUsPerReq / nginx.cpuUsPerReq : null
    r.vsUndiciMinimal = by['undici-minimal'] ? r.cpuUsPerReq / by['undici-minimal'].cpuUsPerReq : null
    r.vsHttpProxyAgent = by['http-proxy-agent'] ? r.cpuUsPerReq / by['http-proxy-agent'].cpuUsPerReq : null
    r.rpsVsDirect = by.direct && r.id !== 'direct' ? r.rps / by.direct.rps : null
  }
  return out
}

const f1 = (x) => Number.isFinite(x) ? x.toFixed(1) : '—'
const f2 = (x) => Number.isFinite(x) ? x.toFixed(2) : '—'
const k = (x) => Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '—'

export function textTable (rows) {
  const head = ['proxy', 'CPU µs/req', '(min–max)', '× nginx', '× undici-min', 'req/s', 'vs direct', 'p50 ms', 'p99 ms', 'waited', 'errors']
  const body = rows.map((r) => [r.id, f1(r.cpuUsPerReq), `${f1(r.cpuMin)}–${f1(r.cpuMax)}`, f2(r.vsNginx), f2(r.vsUndiciMinimal),
    k(r.rps), f2(r.rpsVsDirect), f2(r.p50Ms), f2(r.p99Ms), Number.isFinite(r.runqWaitShare) ? `${Math.round(100 * r.runqWaitShare)}%` : '—', String(r.errors)])
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)))
  const line = (cells) => cells.map((c, i) => i === 0 ? c.padEnd(w[i]) : c.padStart(w[i])).join('  ')
  return [line(head), line(w.map((n) => '-'.repeat(n))), ...body.map(line)].join('\n')
}

export function markdownTable (rows) {
  const pct = (x) => Number.isFinite(x) ? `${Math.round(100 * x)}%` : '—'
  const lines = ['| proxy | CPU µs/request (median; min–max) | × nginx | × minimal undici | req/s | req/s vs direct | p50 / p99 ms | CPU 1 used / waited |', '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |']
  for (const r of rows) {
    lines.push(`| ${r.label} | ${f1(r.cpuUsPerReq)} (${f1(r.cpuMin)}–${f1(r.cpuMax)}) | ${f2(r.vsNginx)} | ${f2(r.vsUndiciMinimal)} | ${k(r.rps)} | ${f2(r.rpsVsDirect)} | ${f2(r.p50Ms)} / ${f2(r.p99Ms)} | ${pct(r.proxyCpuShare)} / ${pct(r.runqWaitShare)} |`)
  }
  return lines.join('\n')
}

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')

/** Horizontal bars of CPU µs per request, the claylb rows highlighted, a dashed line at 1.5× nginx. */
export function svgChart (rows, title, subtitle) {
  const W = 760; const left = 250; const right = 70; const barH = 22; const gap = 8; const top = 62
  const H = top + rows.length * (barH + gap) + 34
  const max = Math.max(...rows.map((r) => r.cpuMax).filter(Number.isFinite), 1)
  const x = (v) => left + (v / max) * (W - left - right)
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui, sans-serif" font-size="13">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="12" y="22" font-size="16" font-weight="600">${esc(title)}</text>`,
    `<text x="12" y="42" fill="#555">${esc(subtitle)}</text>`,
  ]
  rows.forEach((r, i) => {
    const y = top + i * (barH + gap)
    const colour = r.id.startsWith('claylb') ? '#c2410c' : r.id === 'direct' ? '#9ca3af' : ['nginx', 'haproxy'].includes(r.id) ? '#2563eb' : '#6b7280'
    parts.push(`<text x="${left - 8}" y="${y + barH * 0.7}" text-anchor="end">${esc(r.short.length > 40 ? r.short.slice(0, 39) + '…' : r.short)}</text>`)
    if (Number.isFinite(r.cpuUsPerReq)) {
      parts.push(`<rect x="${left}" y="${y}" width="${Math.max(1, x(r.cpuUsPerReq) - left).toFixed(1)}" height="${barH}" fill="${colour}"/>`)
      // the spread of the repetitions
      parts.push(`<line x1="${x(r.cpuMin).toFixed(1)}" x2="${x(r.cpuMax).toFixed(1)}" y1="${y + barH / 2}" y2="${y + barH / 2}" stroke="#111" stroke-width="1.2"/>`)
      parts.push(`<text x="${(x(r.cpuMax) + 6).toFixed(1)}" y="${y + barH * 0.7}">${f1(r.cpuUsPerReq)}</text>`)
    }
  })
  const nginx = rows.find((r) => r.id === 'nginx') ?? rows.find((r) => r.id === 'nginx-tls')
  if (nginx && Number.isFinite(nginx.cpuUsPerReq) && 1.5 * nginx.cpuUsPerReq <= max) {
    const gx = x(1.5 * nginx.cpuUsPerReq).toFixed(1)
    const y1 = top - 6; const y2 = top + rows.length * (barH + gap)
    parts.push(`<line x1="${gx}" x2="${gx}" y1="${y1}" y2="${y2}" stroke="#16a34a" stroke-dasharray="4 3"/>`)
    parts.push(`<text x="${Number(gx) + 4}" y="${y1 + 2}" fill="#16a34a" font-size="11">goal: 1.5× nginx</text>`)
  }
  parts.push(`<text x="${W - 8}" y="${H - 8}" text-anchor="end" fill="#555" font-size="11">CPU µs per request (lower is better), median; whisker = min–max</text>`)
  parts.push('</svg>')
  return parts.join('\n') + '\n'
}
