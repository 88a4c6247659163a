/**
 * @module demo/reply
 * Small answer helpers for the demo app's routes.
 */
import type { ServerResponse } from 'node:http'

export function sendJson (res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

/** an integer path parameter within [min, max], or undefined */
export function intParam (v: string | undefined, min: number, max: number): number | undefined {
  if (v === undefined || !/^\d{1,10}$/.test(v)) return undefined
  const n = Number(v)
  return n >= min && n <= max ? n : undefined
}
