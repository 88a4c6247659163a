/**
 * Processes for the macro runner: pinned spawning, free ports, readiness, stopping by pid, and the CPU
 * time of a whole process tree read from /proc (the figure that survives a noisy machine).
 */
import { spawn, spawnSync } from 'node:child_process'
import { readFileSync, readdirSync, openSync, closeSync } from 'node:fs'
import net from 'node:net'
import { setPriority } from 'node:os'

export const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100

export function hasCommand (cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).status === 0
}

/** CPU pinning: the proxy alone on CPU 1, everything else (load, backends, this runner) on CPU 0. */
export const pinning = (() => {
  const cpus = spawnSync('nproc', { encoding: 'utf8' }).stdout.trim()
  const usable = hasCommand('taskset') && Number(cpus) >= 2
  return { usable, proxyCpu: '1', restCpu: '0', why: usable ? '' : 'taskset missing or fewer than 2 CPUs: no pinning' }
})()

/**
 * Optional priority boost (`--nice N`, root only): on a machine shared with other work, the measured
 * processes otherwise wait behind it for their CPU, sleep in between, and pay more CPU per request.
 */
let boost = 0
export function setBoost (n) {
  try { setPriority(process.pid, -n); boost = n } catch { boost = 0 }
  return boost
}

/** `cmd args` as argv, pinned to `cpu` ('proxy' | 'rest' | null) and niced when boosted (both exec). */
export function pinnedArgv (cpu, cmd, args) {
  let argv = [cmd, ...args]
  if (pinning.usable && cpu !== null) argv = ['taskset', '-c', cpu === 'proxy' ? pinning.proxyCpu : pinning.restCpu, ...argv]
  if (boost) argv = ['nice', '-n', String(-boost), ...argv]
  return argv
}

/** Pin this runner (and its threads) to the load generator's CPU. */
export function pinSelf () {
  if (pinning.usable) spawnSync('taskset', ['-a', '-p', '-c', pinning.restCpu, String(process.pid)], { stdio: 'ignore' })
}

const children = new Set()
process.on('exit', () => { for (const c of children) { try { process.kill(c.pid, 'SIGKILL') } catch {} } })

/**
 * Spawn `cmd args` pinned to `cpu` ('proxy' | 'rest' | null). nice and taskset exec the command, so
 * the pid we get is the command's own. Output goes to `logFile` (a real file, as a deployment's log would).
 */
export function spawnPinned (cpu, cmd, args, { logFile, env, cwd } = {}) {
  const [file, ...argv] = pinnedArgv(cpu, cmd, args)
  const fd = logFile ? openSync(logFile, 'a') : 'ignore'
  const child = spawn(file, argv, { stdio: ['ignore', fd, fd], env: { ...process.env, NODE_OPTIONS: '', ...env }, cwd })
  if (typeof fd === 'number') closeSync(fd)
  children.add(child)
  child.once('exit', () => children.delete(child))
  return child
}

/** Stop one process we started, by its pid: SIGTERM, then SIGKILL after `graceMs`. */
export async function stopChild (child, graceMs = 3000) {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  try { process.kill(child.pid, 'SIGTERM') } catch { return }
  const t = setTimeout(() => { try { process.kill(child.pid, 'SIGKILL') } catch {} }, graceMs)
  await exited
  clearTimeout(t)
}

export function freePort () {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })
}

export async function waitPort (port, child, timeoutMs = 15_000) {
  const until = Date.now() + timeoutMs
  for (;;) {
    if (child && (child.exitCode !== null || child.signalCode !== null)) throw new Error(`process ${child.pid} exited before listening on ${port}`)
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1')
      s.once('connect', () => { s.destroy(); resolve(true) })
      s.once('error', () => resolve(false))
    })
    if (ok) return
    if (Date.now() > until) throw new Error(`nothing listening on ${port} after ${timeoutMs} ms`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** utime+stime (clock ticks) and ppid of one pid; null when it is gone. */
function statOf (pid) {
  let s
  try { s = readFileSync(`/proc/${pid}/stat`, 'utf8') } catch { return null }
  // fields after the command name, which may itself hold spaces and parentheses
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ')
  return { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) }
}

/** pid → { ppid, ticks } of every process now */
function scanProc () {
  const all = new Map()
  for (const name of readdirSync('/proc')) {
    if (name.charCodeAt(0) > 57) continue
    const st = statOf(name)
    if (st !== null) all.set(Number(name), st)
  }
  return all
}

/** `pid` and all its descendants, with their stat */
function tree (pid) {
  const all = scanProc()
  const out = []
  for (const [p, st] of all) {
    let q = p
    while (q > 1 && q !== pid) q = all.get(q)?.ppid ?? 0
    if (q === pid) out.push([p, st])
  }
  return out
}

/** CPU seconds used so far by `pid` and all its descendants (threads included: /proc/pid/stat sums them). */
export function treeCpuSeconds (pid) {
  let ticks = 0
  for (const [, st] of tree(pid)) ticks += st.ticks
  return ticks / CLK_TCK
}

/**
 * Time the tree's main threads (the event loops / workers that serve requests) spent runnable but
 * waiting for a CPU, in ms: how much other work sat on the proxy's CPU.
 */
export function treeRunqWaitMs (pid) {
  let ns = 0
  for (const [p] of tree(pid)) {
    try { ns += Number(readFileSync(`/proc/${p}/task/${p}/schedstat`, 'utf8').split(' ')[1]) } catch {}
  }
  return ns / 1e6
}

export function commandVersion (cmd, args, re = /[\d.]+/) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' })
  const m = `${r.stdout ?? ''}${r.stderr ?? ''}`.match(re)
  return m ? m[0] : null
}
