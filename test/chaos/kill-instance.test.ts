/**
 * Chaos: a second claylb instance on the same Redis takes keyed POST /orders (slow ones, so they are
 * mid-request) and is SIGKILLed with its workers (its process group) over and over, beside the mixed
 * load on the first instance (harness.ts). The dead instance's keys are retried on the survivor:
 * `POST /orders` is `upstreamDedupes` (the demo app dedupes on claylb-idempotency-id), so each retry
 * eventually gets the order the first request made, never a second one, then replays it.
 */
import { createHash } from 'node:crypto'
import t from 'tap'
import { Agent, request } from 'undici'
import { scopeOf } from '../../src/shared/idempotency/core.js'
import { startClaylb } from '../helpers/claylb.js'
import { sleep } from '../helpers/http.js'
import { connectRedis } from '../helpers/ioredis.js'
import { chaosRun } from './harness.js'
import { problem } from './mixed-load.js'

const PER_VICTIM = 6
/**
 * How long the victim's workers hold each answer after creating the order, and how long the test waits
 * for every order to exist before it kills anyway. The hold is longer than the wait, so the kill comes
 * before any first answer however far apart a loaded machine creates the orders (with a 1.5 s hold,
 * orders created more than 1.5 s apart let the first one's answer out before the kill). Both stay
 * under `timeouts.headersMs` (30 s), so the victim itself never answers with a 504 either.
 */
const HOLD_MS = 20_000
const CREATED_WAIT_MS = 15_000

/** where the demo app keeps the order of a key (no credential: the scope of an anonymous client) */
const orderKeyOf = (key: string): string => `claylb:demo:{orders}:id:${createHash('sha256').update(scopeOf('')).update('\u0000').update(key).digest('hex')}`

t.test('kill a claylb instance (SIGKILL of its process group) mid-request, again and again', async (t) => {
  let kills = 0
  let faultKeys = 0
  let killedMidRequest = 0
  const wrong: string[] = []
  const answers: Record<string, number> = {}
  const { summary } = await chaosRun(t, {
    name: 'kill-instance',
    seconds: 20,
    async fault ({ lb, redis, running, live, config, env }) {
      const client = await connectRedis(redis.url)
      const agent = new Agent({ connections: 16 })
      const post = async (url: string, key: string, headers: Record<string, string> = {}): Promise<{ status: number, type: string, replayed: boolean, deduped: boolean, body: string } | Error> => {
        try {
          const res = await request(`${url}/orders`, { method: 'POST', headers: { 'content-type': 'application/json', 'idempotency-key': key, ...headers }, body: `{"item":"${key}"}`, dispatcher: agent })
          const body = await res.body.text()
          const type = res.statusCode >= 300 ? String((JSON.parse(body) as { type?: unknown }).type) : ''
          return { status: res.statusCode, type, replayed: res.headers['idempotent-replayed'] === 'true', deduped: res.headers['x-demo-deduped'] === 'true', body }
        } catch (err) {
          return err as Error
        }
      }
      // the victim's orders exist (the demo app wrote them with their id): it is mid-request on all
      const created = async (keys: string[]): Promise<boolean> => await client.exists(...keys.map(orderKeyOf)) === keys.length
      const goal = (): boolean => kills >= 2 && killedMidRequest >= 1
      while (running(goal())) {
        // the mixed load keeps going on the survivor meanwhile: pace by its progress too
        const served = live.keys
        const victim = await startClaylb({ config, env, detached: true })
        const keys = Array.from({ length: PER_VICTIM }, (_, i) => `kill-${process.pid}-${kills}-${i}`)
        faultKeys += keys.length
        const firsts = keys.map((key) => post(victim.url, key, { 'x-demo-delay-ms': String(HOLD_MS) }))
        // mid-request: every order was created and its worker is still waiting to answer (bounded)
        let allCreated = false
        for (const until = Date.now() + CREATED_WAIT_MS; !(allCreated = await created(keys)) && Date.now() < until;) await sleep(20)
        if (allCreated) killedMidRequest++
        process.kill(-victim.pid, 'SIGKILL')
        await victim.exited
        kills++
        for (const f of await Promise.all(firsts)) if (!(f instanceof Error)) wrong.push(`a first request was answered by the dead instance: ${f.status}`)
        // its clients retry on the survivor until the answer is final
        for (const key of keys) {
          let last: Awaited<ReturnType<typeof post>> | undefined
          for (let i = 0; i < 80; i++) {
            last = await post(lb.url, key)
            if (last instanceof Error || last.type !== problem('idempotency-in-flight')) break
            await sleep(100)
          }
          const label = last instanceof Error ? `error ${last.message}` : `${last!.status}${last!.type ? ` ${last!.type}` : ''}${last!.deduped ? ' deduped' : ''}`
          answers[label] = (answers[label] ?? 0) + 1
          // the app answers with the first request's order (if the kill came before every order was
          // created, with a new one: the key's first execution either way)
          if (last instanceof Error || last!.status !== 201 || last!.replayed || (allCreated && !last!.deduped)) {
            wrong.push(`${key}: ${label}`)
            continue
          }
          const replay = await post(lb.url, key)
          if (replay instanceof Error || !replay.replayed || replay.body !== last!.body) wrong.push(`${key}: not replayed afterwards`)
        }
        while (live.keys < served + 20 && running(goal())) await sleep(50)
      }
      await agent.close()
      client.disconnect()
    },
    faultOrders: () => ({ min: faultKeys, max: faultKeys }),
    faultSummary: () => ({ kills, faultKeys, killedMidRequest, faultAnswers: answers }),
  })
  t.ok(kills >= 2 && killedMidRequest >= 1, `instances killed: ${kills}, with every order created and unanswered: ${killedMidRequest}`)
  t.same(wrong, [], 'every key of a killed instance: its order once, the retry got it, then replays')
  t.equal(summary['duplicates'], 0, 'no duplicate order')
})
