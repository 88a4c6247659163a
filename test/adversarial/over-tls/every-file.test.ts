/** Every adversarial file has its twin over TLS here (a new one is not silently left plain-only). */
import t from 'tap'
import { readdirSync } from 'node:fs'
import { adversarialFiles } from './twin.js'

const twins = readdirSync(import.meta.dirname).filter((f) => f.endsWith('.test.ts') && f !== 'every-file.test.ts').sort()
t.ok(adversarialFiles().length >= 4, `adversarial files: ${adversarialFiles().join(', ')}`)
t.same(twins, adversarialFiles(), 'one twin over TLS per adversarial file')
