/**
 * Scrapes claylb's /metrics and validates it with a real Prometheus text parser
 * (parse-prometheus-text-format, which throws on malformed lines), plus the checks it leaves out:
 * every family typed, names valid and prefixed claylb_, values numeric, no timestamps.
 * That parser folds labelled histograms together, so values are read from the flat sample lines.
 */
import { createRequire } from 'node:module'
import { req } from './http.js'

/** what parse-prometheus-text-format returns (the package ships no types) */
export interface Family {
  name: string
  help: string
  type: string
  metrics: Array<{ value?: string, labels?: Record<string, string>, timestamp_ms?: string, buckets?: Record<string, string>, count?: string, sum?: string }>
}
const parse = createRequire(import.meta.url)('parse-prometheus-text-format') as (text: string) => Family[]

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const NUMBER = /^(?:[+-]?(?:\d+\.?\d*(?:e[+-]?\d+)?|\.\d+(?:e[+-]?\d+)?)|[+-]?Inf|NaN)$/i
const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$/
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g

export interface Sample { name: string, labels: Record<string, string>, value: number }
export interface Scrape { families: Family[], samples: Sample[], text: string, contentType: string }

export async function scrape (admin: string): Promise<Scrape> {
  const r = await req(`${admin}/metrics`)
  if (r.status !== 200) throw new Error(`/metrics answered ${r.status}`)
  const families = parse(r.body)
  for (const f of families) {
    if (!NAME.test(f.name)) throw new Error(`bad metric name ${f.name}`)
    if (!f.name.startsWith('claylb_')) throw new Error(`metric ${f.name} is not prefixed claylb_`)
    if (f.type === 'UNTYPED') throw new Error(`metric ${f.name} has no TYPE line`)
    for (const s of f.metrics) if (s.timestamp_ms !== undefined) throw new Error(`${f.name}: unexpected timestamp/garbage ${s.timestamp_ms}`)
  }
  const samples: Sample[] = []
  for (const line of r.body.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const m = SAMPLE.exec(line)
    if (m === null || !NUMBER.test(m[3]!)) throw new Error(`not a sample line: ${line}`)
    const labels: Record<string, string> = {}
    for (const l of (m[2] ?? '').matchAll(LABEL)) labels[l[1]!] = l[2]!
    samples.push({ name: m[1]!, labels, value: Number(m[3]!.replace(/^\+?Inf$/i, 'Infinity')) })
  }
  return { families, samples, text: r.body, contentType: String(r.headers['content-type']) }
}

export function family (s: Scrape, name: string): Family {
  const f = s.families.find((x) => x.name === name)
  if (f === undefined) throw new Error(`no metric ${name}`)
  return f
}

/** The sum of the samples named `name` whose labels include `labels`. */
export function value (s: Scrape, name: string, labels: Record<string, string> = {}): number {
  let sum = 0
  for (const m of s.samples) {
    if (m.name === name && Object.entries(labels).every(([k, v]) => m.labels[k] === v)) sum += m.value
  }
  return sum
}

/** series (sample lines) whose name starts with `prefix` */
export function seriesCount (s: Scrape, prefix = 'claylb_'): number {
  return s.samples.filter((m) => m.name.startsWith(prefix)).length
}
