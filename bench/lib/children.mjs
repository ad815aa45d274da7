/**
 * The harness's side of the protocol of lib/child.mjs: starts a child process, sends it its
 * config, and resolves once it is ready, with what the harness calls on it.
 */
import { fork } from 'node:child_process'

/**
 * @param {string} script absolute path of the child's module
 * @param {unknown} config sent with `start`
 * @param {{ name: string, timeout?: number, execArgv?: string[], execPath?: string, cwd?: string }} options
 *   execPath: a program that runs Node itself (valgrind), with its own arguments and Node's in execArgv;
 *   cwd: where files the child writes by name land (V8's logs).
 */
export async function startChildProcess (script, config, { name, timeout = 120_000, execArgv = ['--expose-gc'], execPath, cwd } = {}) {
  const child = fork(script, [], { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'], ...(execPath !== undefined ? { execPath } : {}), ...(cwd !== undefined ? { cwd } : {}) })
  const pending = new Map()
  let nextId = 0
  let onReady
  const ready = new Promise((resolve, reject) => { onReady = { resolve, reject } })
  child.on('message', (msg) => {
    if (msg.type === 'ready') onReady.resolve(msg)
    else if (msg.type === 'reply') { pending.get(msg.id)?.resolve(msg.value); pending.delete(msg.id) } else if (msg.type === 'error') {
      const err = new Error(`${name}: ${msg.message}`)
      if (msg.id === undefined) onReady.reject(err)
      else { pending.get(msg.id)?.reject(err); pending.delete(msg.id) }
    }
  })
  child.once('exit', (code, signal) => {
    const err = new Error(`${name} exited (code ${code}, signal ${signal})`)
    onReady.reject(err)
    for (const p of pending.values()) p.reject(err)
  })
  child.send({ type: 'start', config })
  const timer = setTimeout(() => onReady.reject(new Error(`${name} did not start within ${timeout} ms`)), timeout)
  const { url, execArgv: flags } = await ready.finally(() => clearTimeout(timer))
  return {
    name,
    url,
    /** The flags the child says it runs with (process.execArgv). */
    execArgv: flags,
    pid: child.pid,
    pids: () => [child.pid],
    call (msg) {
      const id = nextId++
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject })
        child.send({ ...msg, id })
      })
    },
    async stop () {
      if (child.exitCode !== null || child.signalCode !== null) return
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.send({ type: 'stop' })
      const kill = setTimeout(() => child.kill('SIGKILL'), 10_000)
      await exited
      clearTimeout(kill)
    }
  }
}
