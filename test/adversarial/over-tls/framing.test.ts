import { overTls } from './twin.js'

overTls('framing.test.ts')
