import t from 'tap'
import { MemoryStore } from '../../src/shared/idempotency/memory-store.js'
import { storeConformance } from './store-conformance.js'
import { ManualClock } from '../helpers/clock.js'

let store: MemoryStore | undefined
t.teardown(() => store?.close())
// the memory store runs on a clock the suite advances: its leases and TTLs are crossed, not slept through
const clock = new ManualClock()
storeConformance(t, () => (store = new MemoryStore(clock)), clock)

