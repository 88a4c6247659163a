/**
 * An OTLP/HTTP traces receiver for tests: POST /v1/traces bodies (protobuf) decoded with the official
 * opentelemetry-proto definitions (test/fixtures/opentelemetry-proto, read at start): field numbers,
 * names and types come from those .proto files, not from claylb's encoder, so a field claylb put under
 * a wrong number or wire type decodes wrongly (or fails) here.
 */
import http from 'node:http'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'

interface Field { name: string, type: string, repeated: boolean }
type Schema = Map<string, Map<number, Field>>

const PROTO_DIR = join(import.meta.dirname, '..', 'fixtures', 'opentelemetry-proto')

/** messages (nested ones too, by their own name) → field number → field; enum names are kept as 'enum' */
export function loadSchema (dir = PROTO_DIR): { schema: Schema, enums: Set<string> } {
  const schema: Schema = new Map()
  const enums = new Set<string>()
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.proto'))) {
    const text = readFileSync(join(dir, f), 'utf8').replace(/\/\/.*$/gm, '').replace(/\/\*[\s\S]*?\*\//g, '')
    const stack: Array<{ kind: string, name: string }> = []
    for (const tok of text.match(/[^;{}]+[;{]|}/g) ?? []) {
      const s = tok.trim().replace(/\s+/g, ' ')
      if (s === '}') { stack.pop(); continue }
      const block = /^(message|enum|oneof|service) (\w+) ?\{$/.exec(s)
      if (block !== null) {
        stack.push({ kind: block[1]!, name: block[2]! })
        if (block[1] === 'message') schema.set(block[2]!, new Map())
        if (block[1] === 'enum') enums.add(block[2]!)
        continue
      }
      if (s.endsWith('{')) { stack.push({ kind: 'other', name: '' }); continue }
      const msg = [...stack].reverse().find((b) => b.kind === 'message')
      const top = stack[stack.length - 1]
      if (msg === undefined || top === undefined || top.kind === 'enum' || top.kind === 'other') continue
      const field = /^(repeated |optional )?([\w.]+) (\w+) = (\d+)/.exec(s)
      if (field !== null) schema.get(msg.name)!.set(Number(field[4]), { name: field[3]!, type: field[2]!.split('.').pop()!, repeated: field[1] === 'repeated ' })
    }
  }
  return { schema, enums }
}

export function decode (buf: Buffer, message: string, s = loadSchema()): Record<string, unknown> {
  const fields = s.schema.get(message)
  if (fields === undefined) throw new Error(`no message ${message} in the .proto files`)
  const out: Record<string, unknown> = {}
  let i = 0
  const varint = (): bigint => {
    let v = 0n
    let shift = 0n
    for (;;) {
      const b = buf[i++]
      if (b === undefined) throw new Error('truncated varint')
      v |= BigInt(b & 0x7f) << shift
      if ((b & 0x80) === 0) return v
      shift += 7n
    }
  }
  while (i < buf.length) {
    const key = Number(varint())
    const no = key >> 3
    const wire = key & 7
    const f = fields.get(no)
    if (f === undefined) throw new Error(`${message}: field ${no} is not in the definition`)
    let value: unknown
    if (wire === 0) {
      const v = varint()
      if (!['int64', 'uint64', 'int32', 'uint32', 'bool'].includes(f.type) && !s.enums.has(f.type)) throw new Error(`${message}.${f.name}: varint for ${f.type}`)
      value = f.type === 'bool' ? v !== 0n : Number(v)
    } else if (wire === 1) {
      if (f.type !== 'fixed64' && f.type !== 'sfixed64' && f.type !== 'double') throw new Error(`${message}.${f.name}: 64-bit for ${f.type}`)
      value = f.type === 'double' ? buf.readDoubleLE(i) : buf.readBigUInt64LE(i)
      i += 8
    } else if (wire === 5) {
      if (f.type !== 'fixed32' && f.type !== 'float') throw new Error(`${message}.${f.name}: 32-bit for ${f.type}`)
      value = buf.readUInt32LE(i)
      i += 4
    } else if (wire === 2) {
      const len = Number(varint())
      const b = buf.subarray(i, i + len)
      i += len
      if (f.type === 'string') value = b.toString('utf8')
      else if (f.type === 'bytes') value = b.toString('hex')
      else if (s.schema.has(f.type)) value = decode(b, f.type, s)
      else throw new Error(`${message}.${f.name}: length-delimited for ${f.type}`)
    } else throw new Error(`${message}: wire type ${wire}`)
    if (f.repeated) ((out[f.name] ??= []) as unknown[]).push(value)
    else out[f.name] = value
  }
  return out
}

export interface OtlpReceiver {
  url: string
  /** every span received, decoded, with its attributes as a plain object */
  spans: Array<Record<string, unknown> & { attrs: Record<string, unknown> }>
  resources: Array<Record<string, unknown>>
  contentTypes: string[]
  waitFor (n: number): Promise<void>
  close (): Promise<void>
}

function anyValue (v: Record<string, unknown>): unknown {
  return v['string_value'] ?? v['int_value'] ?? v['bool_value'] ?? v['double_value']
}

export function attrsOf (list: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const kv of (list ?? []) as Array<Record<string, unknown>>) out[kv['key'] as string] = anyValue(kv['value'] as Record<string, unknown>)
  return out
}

export async function startOtlpReceiver (): Promise<OtlpReceiver> {
  const s = loadSchema()
  const waiters = new Set<() => void>()
  const r = { spans: [], resources: [], contentTypes: [] } as unknown as OtlpReceiver
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (d: Buffer) => chunks.push(d))
    req.on('end', () => {
      r.contentTypes.push(String(req.headers['content-type']))
      const msg = decode(Buffer.concat(chunks), 'ExportTraceServiceRequest', s)
      for (const rs of (msg['resource_spans'] ?? []) as Array<Record<string, unknown>>) {
        r.resources.push(attrsOf((rs['resource'] as Record<string, unknown>)['attributes']))
        for (const ss of (rs['scope_spans'] ?? []) as Array<Record<string, unknown>>) {
          for (const sp of (ss['spans'] ?? []) as Array<Record<string, unknown>>) r.spans.push({ ...sp, attrs: attrsOf(sp['attributes']) })
        }
      }
      res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end()
      for (const w of waiters) w()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  r.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`
  r.waitFor = (n) => new Promise((resolve) => {
    const check = (): void => { if (r.spans.length >= n) { waiters.delete(check); resolve() } }
    waiters.add(check)
    check()
  })
  r.close = () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()) })
  return r
}
