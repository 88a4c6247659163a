/**
 * @module redis/turn-cork
 * The commands one turn of the event loop sends to Redis leave in one write. ioredis writes every
 * command to its socket at once: a system call per command in this process, and in redis-server a
 * wake-up, a read and a write per command, which is most of what a short script costs Redis. Corked
 * at the first command of a turn and uncorked by a setImmediate (after the turn's I/O callbacks), the
 * commands of every request parsed in that turn go out as one writev and come back as one reply
 * read. It delays a command by less than one turn and allocates one immediate per turn, not per
 * command. A Redis Cluster client writes to one socket per node: it is left as it is.
 */
import type { Writable } from 'node:stream'
import type { Cluster, Redis } from 'ioredis'

export class TurnCork {
  private corked: Writable | null = null

  constructor (private readonly client: Redis | Cluster) {}

  /** call before sending a command: the socket is corked until the end of this turn */
  hold (): void {
    if (this.corked !== null) return
    const c = this.client
    if (c.isCluster) return
    // the socket of the moment: ioredis makes a new one on every reconnection
    const s = (c as Redis).stream as Writable | undefined
    if (s === undefined || !s.writable) return
    s.cork()
    this.corked = s
    setImmediate(uncork, this)
  }

  /** @internal */
  release (): void {
    const s = this.corked
    this.corked = null
    s?.uncork()
  }
}

function uncork (t: TurnCork): void {
  t.release()
}
