/**
 * The Dockerfile, checked statically (Docker does not run here) with a real Dockerfile parser
 * (dockerfile-ast): a build stage with the dev dependencies, a runtime stage with the production ones
 * only, a non-root user, an init that forwards SIGTERM, a HEALTHCHECK, nothing installed at start; and
 * that the runtime stage can run: dist/ imports nothing but builtins and production dependencies, and
 * every dev dependency is one `npm ci --omit=dev` leaves out. Strictly: an unknown instruction or flag
 * is an error, exec forms are JSON, the base image is an exact Node 24 release, tini an exact package
 * version, and the OCI labels say what the image is.
 */
import t from 'tap'
import { readdirSync, readFileSync, existsSync } from 'node:fs'
import { builtinModules } from 'node:module'
import { join } from 'node:path'
import { DockerfileParser, Copy, JSONInstruction, ModifiableInstruction, PropertyInstruction, type Instruction } from 'dockerfile-ast'
import { parse } from 'yaml'
import { ROOT } from '../helpers/claylb.js'

interface Stage { name: string, instructions: Instruction[] }

function stages (text: string): Stage[] {
  const out: Stage[] = []
  for (const i of DockerfileParser.parse(text).getInstructions()) {
    if (i.getKeyword() === 'FROM') {
      const args = i.getArguments().map((a) => a.getValue())
      const as = args.findIndex((a) => a.toUpperCase() === 'AS')
      out.push({ name: as >= 0 ? args[as + 1]! : String(out.length), instructions: [] })
    } else if (out.length > 0) {
      out.at(-1)!.instructions.push(i)
    }
  }
  return out
}

const args = (i: Instruction): string => i.getArgumentsContent() ?? ''
const of = (s: Stage, keyword: string): Instruction[] => s.instructions.filter((i) => i.getKeyword() === keyword)
/** a COPY's --from stage (the parser keeps flags apart from the arguments) */
const copyFrom = (i: Instruction): string | undefined => i instanceof Copy ? i.getFromFlag()?.getValue() ?? undefined : undefined
/** npm ci without --omit=dev installs the dev dependencies */
const installsDev = (cmd: string): boolean => /\bnpm (ci|install|i)\b/.test(cmd) && !/--omit[= ]dev|--production\b/.test(cmd)
const installsProd = (cmd: string): boolean => /\bnpm ci\b/.test(cmd) && /--omit[= ]dev/.test(cmd)

/** What is wrong with a Dockerfile for claylb, one line each; [] when nothing is. */
function dockerfileProblems (text: string): string[] {
  const problems: string[] = []
  const all = stages(text)
  if (all.length < 2) return ['not multi-stage: one FROM']
  const runtime = all.at(-1)!
  const byName = new Map(all.map((s) => [s.name, s]))
  if (!all.slice(0, -1).some((s) => of(s, 'RUN').some((r) => installsDev(args(r))) && of(s, 'RUN').some((r) => /npm run build|\btsc\b/.test(args(r))))) {
    problems.push('no build stage that installs the dev dependencies and compiles')
  }
  // the runtime stage: no install of its own beyond OS packages, node_modules only from a production install
  for (const r of of(runtime, 'RUN')) if (/\bnpm\b|\byarn\b|\bpnpm\b/.test(args(r))) problems.push(`the runtime stage runs a package manager: ${args(r)}`)
  const copies = of(runtime, 'COPY')
  const modules = copies.filter((c) => /node_modules/.test(args(c)))
  if (modules.length !== 1) problems.push(`the runtime stage should copy node_modules exactly once: ${modules.length}`)
  for (const c of modules) {
    const from = copyFrom(c)
    const source = from === undefined ? undefined : byName.get(from)
    if (source === undefined) problems.push(`node_modules copied from the build context, not a stage: ${args(c)}`)
    else if (!of(source, 'RUN').some((r) => installsProd(args(r))) || of(source, 'RUN').some((r) => installsDev(args(r)))) {
      problems.push(`node_modules come from stage ${from}, which does not install production dependencies only`)
    }
  }
  if (!copies.some((c) => copyFrom(c) !== undefined && /\bdist\b/.test(args(c)))) problems.push('the runtime stage does not copy the compiled dist/ from a build stage')
  const users = of(runtime, 'USER').map(args)
  const user = users.at(-1)
  if (user === undefined || /^(root|0)(:|$)/.test(user)) problems.push(`the runtime stage runs as root (USER ${user ?? 'unset'})`)
  else {
    const lastUser = runtime.instructions.findLastIndex((i) => i.getKeyword() === 'USER')
    if (runtime.instructions.slice(lastUser).some((i) => i.getKeyword() === 'RUN')) problems.push('RUN after USER: runs as the user, probably meant as root')
  }
  const entry = of(runtime, 'ENTRYPOINT').map(args).at(-1) ?? ''
  const cmd = of(runtime, 'CMD').map(args).at(-1) ?? ''
  if (!/tini|dumb-init/.test(entry) && !/--init/.test(entry)) problems.push('no init as PID 1 (tini): SIGTERM must reach claylb so it drains')
  if (/\bnpm\b/.test(entry + cmd)) problems.push(`npm at container start: ${entry} ${cmd}`)
  const health = of(runtime, 'HEALTHCHECK').map(args).at(-1)
  if (health === undefined || /^NONE\b/.test(health)) problems.push('no HEALTHCHECK')
  return problems
}

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string, license: string, description: string, dependencies: Record<string, string>, devDependencies: Record<string, string> }

/** every Dockerfile instruction, and the flags each one takes (BuildKit's Dockerfile reference) */
const FLAGS: Record<string, string[]> = {
  FROM: ['platform'], RUN: ['mount', 'network', 'security'], CMD: [], LABEL: [], EXPOSE: [], ENV: [],
  ADD: ['chown', 'chmod', 'link', 'checksum', 'keep-git-dir', 'exclude'], COPY: ['from', 'chown', 'chmod', 'link', 'parents', 'exclude'],
  ENTRYPOINT: [], VOLUME: [], USER: [], WORKDIR: [], ARG: [], ONBUILD: [], STOPSIGNAL: [],
  HEALTHCHECK: ['interval', 'timeout', 'start-period', 'start-interval', 'retries'], SHELL: [], MAINTAINER: [],
}
const OCI_LABELS = ['title', 'description', 'version', 'licenses', 'base.name'].map((k) => `org.opencontainers.image.${k}`)

/** What a strict reading of a Dockerfile finds wrong beyond its shape, one line each. */
function strictProblems (text: string): string[] {
  const problems: string[] = []
  const file = DockerfileParser.parse(text)
  for (const i of file.getInstructions()) {
    const keyword = i.getKeyword()
    const line = i.getRange().start.line + 1
    const flags = FLAGS[keyword]
    if (flags === undefined) {
      problems.push(`line ${line}: unknown instruction ${keyword}`)
      continue
    }
    if (i instanceof ModifiableInstruction) {
      for (const f of i.getFlags()) if (!flags.includes(f.getName())) problems.push(`line ${line}: ${keyword} has no flag --${f.getName()}`)
    }
    // exec form: a JSON array, so no shell stands between tini and node (signals reach claylb)
    if (['CMD', 'ENTRYPOINT'].includes(keyword) && !(i instanceof JSONInstruction && i.getJSONStrings().length > 0)) problems.push(`line ${line}: ${keyword} is not in exec (JSON) form`)
  }
  // the base: an exact Node 24 release (the ARG default the FROMs use)
  const node = file.getInitialARGs().flatMap((a) => a.getProperties()).find((p) => p.getName() === 'NODE_IMAGE')?.getValue() ?? ''
  if (!/^node:24\.\d+\.\d+-[a-z]+(-slim)?(@sha256:[0-9a-f]{64})?$/.test(node)) problems.push(`the base image is not an exact Node 24 release: ${node || 'NODE_IMAGE unset'}`)
  for (const i of file.getInstructions().filter((i) => i.getKeyword() === 'FROM')) {
    const image = i.getArguments()[0]?.getValue() ?? ''
    if (image !== '${NODE_IMAGE}' && !stages(text).some((s) => s.name === image)) problems.push(`FROM ${image}: not the pinned NODE_IMAGE`)
  }
  const runtime = stages(text).at(-1)!
  const installs = of(runtime, 'RUN').map(args).join('\n')
  const tini = /apt-get install[^\n]*\btini(=\S+)?/.exec(installs)
  if (tini === null || tini[1] === undefined) problems.push('tini is not pinned to a package version (tini=VERSION)')
  else if (tini[1].includes('$')) {
    const name = /\$\{?(\w+)/.exec(tini[1])![1]!
    const value = runtime.instructions.filter((i): i is PropertyInstruction => i instanceof PropertyInstruction && i.getKeyword() === 'ARG').flatMap((a) => a.getProperties()).find((p) => p.getName() === name)?.getValue()
    if (!value) problems.push(`tini=${tini[1]}: ${name} has no default version`)
  }
  const labels = new Map(runtime.instructions.filter((i): i is PropertyInstruction => i instanceof PropertyInstruction && i.getKeyword() === 'LABEL')
    .flatMap((l) => l.getProperties()).map((p) => [p.getName(), (p.getValue() ?? '').replace(/^"|"$/g, '')]))
  for (const l of OCI_LABELS) if (!labels.get(l)) problems.push(`no ${l} label`)
  if (labels.has('org.opencontainers.image.version') && labels.get('org.opencontainers.image.version') !== pkg.version) problems.push(`org.opencontainers.image.version ${labels.get('org.opencontainers.image.version')} is not package.json's ${pkg.version}`)
  if (labels.has('org.opencontainers.image.licenses') && labels.get('org.opencontainers.image.licenses') !== pkg.license) problems.push(`org.opencontainers.image.licenses is not package.json's ${pkg.license}`)
  return problems
}

const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8')

t.test('strict: known instructions and flags, exec forms, an exact Node 24 base, tini pinned, OCI labels', async (t) => {
  t.same(strictProblems(dockerfile), [])
})

t.test('the strict check can fail: each mistake is named', async (t) => {
  const cases: Array<[string, string, RegExp]> = [
    ['a misspelt instruction', dockerfile.replace(/^WORKDIR \/app$/m, 'WORKDRI /app'), /unknown instruction WORKDRI/],
    ['a misspelt flag', dockerfile.replace('COPY --from=deps', 'COPY --form=deps'), /COPY has no flag --form/],
    ['a shell-form ENTRYPOINT', dockerfile.replace(/^ENTRYPOINT .*$/m, 'ENTRYPOINT /usr/bin/tini -- node bin/claylb'), /ENTRYPOINT is not in exec/],
    ['a floating tag', dockerfile.replace(/^ARG NODE_IMAGE=.*$/m, 'ARG NODE_IMAGE=node:24-bookworm-slim'), /not an exact Node 24 release/],
    ['Node 20', dockerfile.replace(/^ARG NODE_IMAGE=.*$/m, 'ARG NODE_IMAGE=node:20.19.0-bookworm-slim'), /not an exact Node 24 release/],
    ['a FROM around the pin', dockerfile.replace('FROM ${NODE_IMAGE} AS deps', 'FROM node:latest AS deps'), /FROM node:latest: not the pinned NODE_IMAGE/],
    ['tini unpinned', dockerfile.replace('tini=${TINI_VERSION}', 'tini'), /tini is not pinned/],
    ['no licence label', dockerfile.replace(/^\s*org\.opencontainers\.image\.licenses=.*\n/m, ''), /no org\.opencontainers\.image\.licenses label/],
    ['a stale version label', dockerfile.replace(`org.opencontainers.image.version="${pkg.version}"`, 'org.opencontainers.image.version="0.0.1"'), /is not package\.json's/],
  ]
  for (const [what, text, problem] of cases) {
    t.not(text, dockerfile, `${what}: the variant differs from the real file`)
    t.match(strictProblems(text).join('\n'), problem, what)
  }
})

t.test('the Dockerfile: multi-stage, production dependencies only at run time, non-root, tini, HEALTHCHECK', async (t) => {
  t.same(dockerfileProblems(dockerfile), [])
  const names = stages(dockerfile).map((s) => s.name)
  t.same(names, ['build', 'deps', 'runtime'])
})

t.test('the check can fail: each mistake is named', async (t) => {
  const cases: Array<[string, string, RegExp]> = [
    ['single stage', 'FROM node:20\nCOPY . .\nRUN npm ci\nCMD ["node","bin/claylb","start"]\n', /not multi-stage/],
    ['runs as root', dockerfile.replace(/^USER node$/m, 'USER root'), /runs as root/],
    ['no USER', dockerfile.replace(/^USER node$/m, ''), /runs as root/],
    ['dev modules copied', dockerfile.replace('COPY --from=deps /src/node_modules', 'COPY --from=build /src/node_modules'), /does not install production dependencies only/],
    ['npm ci at start', dockerfile.replace(/^CMD .*$/m, 'CMD ["sh", "-c", "npm ci && node bin/claylb start"]'), /npm at container start/],
    ['no init', dockerfile.replace('"/usr/bin/tini", "--", ', ''), /no init/],
    ['no healthcheck', dockerfile.replace(/^HEALTHCHECK[^\n]*\\\n[^\n]*\n/m, ''), /no HEALTHCHECK/],
  ]
  for (const [what, text, problem] of cases) {
    t.not(text, dockerfile, `${what}: the variant differs from the real file`)
    t.match(dockerfileProblems(text).join('\n'), problem, what)
  }
})

t.test("the image's command: its config exists and is valid, the HEALTHCHECK probes its admin port", async (t) => {
  const runtime = stages(dockerfile).at(-1)!
  const cmd = JSON.parse(args(of(runtime, 'CMD').at(-1)!)) as string[]
  const config = cmd[cmd.indexOf('--config') + 1]!
  t.ok(existsSync(join(ROOT, config)), `${config} exists`)
  const admin = (parse(readFileSync(join(ROOT, config), 'utf8')) as { admin: { port: number } }).admin
  t.match(args(of(runtime, 'HEALTHCHECK').at(-1)!), new RegExp(`127\\.0\\.0\\.1:${admin.port}/healthz`))
  t.same(of(runtime, 'EXPOSE').map(args), ['8080 9180'])
})

t.test('.dockerignore sends only what the Dockerfile copies', async (t) => {
  const lines = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'))
  t.equal(lines[0], '*', 'everything is ignored first (node_modules, dist, .git, secrets in .env)')
  const allowed = lines.filter((l) => l.startsWith('!')).map((l) => l.slice(1).replace(/\/$/, ''))
  for (const s of stages(dockerfile)) {
    for (const c of of(s, 'COPY').filter((c) => copyFrom(c) === undefined)) {
      const sources = args(c).split(/\s+/).slice(0, -1)
      for (const src of sources) t.ok(allowed.includes(src.replace(/\/$/, '')), `${src} (COPY in ${s.name}) is in the context`)
    }
  }
})

t.test('the runtime stage can run dist/: every import is a builtin or a production dependency', async (t) => {
  const prod = new Set(Object.keys(pkg.dependencies))
  const builtins = new Set(builtinModules)
  const files = readdirSync(join(ROOT, 'dist'), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.js'))
  t.ok(files.length > 20, `${files.length} files in dist/`)
  const bad: string[] = []
  for (const f of files) {
    // comments out first: prose such as "from 'data'" is not an import
    const src = readFileSync(join(ROOT, 'dist', f), 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '')
    for (const m of src.matchAll(/(?:^\s*(?:import|export)\b[^'"]*?\bfrom\s+|\bimport\s*\(\s*)['"]([^'"./][^'"]*)['"]/gm)) {
      const spec = m[1]!
      const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!
      if (!spec.startsWith('node:') && !builtins.has(name) && !prod.has(name)) bad.push(`${f}: ${spec}`)
    }
  }
  t.same(bad, [], 'no import of a dev dependency or an undeclared package')
  // and the other way: every production dependency is loaded by dist/ (an import, or a require of a
  // lazily loaded one), so the image ships nothing that nothing runs
  const loaded = new Set<string>()
  for (const f of files) {
    const src = readFileSync(join(ROOT, 'dist', f), 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '')
    for (const m of src.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*|\brequire\s*\(\s*)['"]([^'"./][^'"]*)['"]/g)) {
      const spec = m[1]!
      loaded.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!)
    }
  }
  t.same([...prod].filter((name) => !loaded.has(name)), [], 'no production dependency that dist/ never loads (bench/ has its own package.json)')

  // npm ci --omit=dev leaves out exactly what the lockfile marks dev
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> }
  for (const name of Object.keys(pkg.devDependencies)) {
    t.equal(lock.packages[`node_modules/${name}`]?.dev, true, `${name} is dev-only in the lockfile (not in the runtime stage)`)
  }
})
