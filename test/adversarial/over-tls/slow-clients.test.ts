import { overTls } from './twin.js'

overTls('slow-clients.test.ts')
