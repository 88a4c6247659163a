/**
 * @module session/hold
 * Holds a response at its first byte while an async step runs (the session save), then lets it through
 * in the order the app wrote it; if the step fails, the held calls are dropped and `fail` answers
 * instead (a 503 while nothing has been sent). Works on a plain node:http ServerResponse, and so under
 * Express and Fastify, which write through it.
 */
import type { ServerResponse } from 'node:http'

/** Returns a promise when there is something to do before the response starts (or ends), else undefined. */
export type Gate = (phase: 'start' | 'end') => Promise<void> | undefined

type Method = 'writeHead' | 'write' | 'end'
type AnyFn = (...args: unknown[]) => unknown

export function holdResponse (res: ServerResponse, gate: Gate, fail: (err: unknown) => void): void {
  const original = { writeHead: res.writeHead, write: res.write, end: res.end } as unknown as Record<Method, AnyFn>
  const patched = res as unknown as Record<Method, AnyFn>
  let started = false
  /** calls made while a gate runs; an `end` is marked when it already went through the end gate */
  let held: Array<[Method, unknown[], boolean?]> | undefined

  const restore = (): void => {
    patched.writeHead = original.writeHead
    patched.write = original.write
    patched.end = original.end
  }
  const hold = (p: Promise<void>): void => {
    held = []
    p.then(() => {
      const calls = held!
      held = undefined
      try {
        for (const [m, args, gated] of calls) {
          // an end the app made while the start was held has not been through the end gate yet: a change
          // made after the first byte must be saved before the end goes out, however long the start took
          if (m === 'end' && !gated) { endThroughGate(args); return }
          original[m].apply(res, m === 'writeHead' ? withOurCookies(res, args) : args)
        }
      } catch (err) {
        res.destroy(err as Error)
      }
    }, (err: unknown) => {
      held = undefined
      restore()
      fail(err)
    })
  }
  const endThroughGate = (args: unknown[]): void => {
    const p = gate(started ? 'end' : 'start')
    started = true
    if (p) { hold(p); held!.push(['end', args, true]); return }
    restore()
    original.end.apply(res, args)
  }
  // Node's implicit header path calls `this.writeHead`, so writes replayed later come back here with
  // `started` set and go straight through.
  const passOrHold = (m: 'writeHead' | 'write', args: unknown[], heldResult: unknown): unknown => {
    if (held) { held.push([m, args]); return heldResult }
    if (!started) {
      started = true
      const p = gate('start')
      if (p) { hold(p); held!.push([m, args]); return heldResult }
    }
    return original[m].apply(res, m === 'writeHead' ? withOurCookies(res, args) : args)
  }
  patched.writeHead = (...args) => passOrHold('writeHead', args, res)
  patched.write = (...args) => passOrHold('write', args, true)
  patched.end = (...args) => {
    if (held) { held.push(['end', args, false]); return res }
    endThroughGate(args)
    return res
  }
}

/**
 * writeHead(status, [message], headers) replaces a header set earlier with setHeader; for Set-Cookie
 * that would drop the session cookie, so both lists are kept.
 */
function withOurCookies (res: ServerResponse, args: unknown[]): unknown[] {
  const ours = res.getHeader('set-cookie')
  if (ours === undefined) return args
  const i = typeof args[1] === 'string' ? 2 : 1
  const headers = args[i]
  if (!headers || typeof headers !== 'object' || Array.isArray(headers)) return args
  const name = Object.keys(headers).find((k) => k.toLowerCase() === 'set-cookie')
  if (name === undefined) return args
  const theirs = (headers as Record<string, unknown>)[name]
  const merged = [...[theirs].flat(), ...[ours].flat()].map(String)
  return [...args.slice(0, i), { ...headers, [name]: merged }, ...args.slice(i + 1)]
}
