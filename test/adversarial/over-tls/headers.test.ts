import { overTls } from './twin.js'

overTls('headers.test.ts')
