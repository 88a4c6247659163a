import t from 'tap'
import { MemoryStore } from '../../src/shared/idempotency/memory-store.js'
import { storeConformance } from './store-conformance.js'

let store: MemoryStore | undefined
t.teardown(() => store?.close())
storeConformance(t, () => (store = new MemoryStore()))

