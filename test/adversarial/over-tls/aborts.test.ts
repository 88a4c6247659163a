import { overTls } from './twin.js'

overTls('aborts.test.ts')
