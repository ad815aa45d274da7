/**
 * A real `redis-server` for tests, on a free loopback port, without persistence. Tests that need
 * Redis FAIL (never skip) when it cannot be started: CI installs it (`scripts/setup.mjs --test`).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { freePort } from './ports.js'

export interface TestRedis {
  port: number
  /** `redis://127.0.0.1:PORT` */
  url: string
  /** Kills the server (SIGKILL): it disappears at once, connections are cut, data is lost. */
  stop: () => Promise<void>
  /** Starts a fresh, empty server on the same port and waits until it accepts connections. */
  restart: () => Promise<void>
  /** Freezes the server (SIGSTOP): connections stay open but nothing is answered (a "slow" Redis). */
  pause: () => void
  /** Unfreezes a paused server (SIGCONT). */
  resume: () => void
  /** Stops the server for good; safe to call twice. */
  close: () => Promise<void>
}

const MISSING = 'redis-server was not found on PATH. The Redis tests start a real redis-server on a ' +
  'loopback port and cannot run without it. Install it: `apt-get install redis-server` ' +
  '(Debian/Ubuntu; `node scripts/setup.mjs --test` does it when run as root).'

let checked = false

function ensureInstalled (): void {
  if (checked) return
  const probe = spawnSync('redis-server', ['--version'], { encoding: 'utf8' })
  if (probe.error !== undefined) {
    throw new Error(`${MISSING} (${(probe.error as NodeJS.ErrnoException).code ?? probe.error.message})`)
  }
  if (probe.status !== 0) throw new Error(`redis-server --version failed (exit ${probe.status}): ${probe.stderr}`)
  checked = true
}

/** Resolves true when the server answers PING with +PONG. */
async function ping (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' })
    let answer = ''
    const done = (ok: boolean): void => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(500, () => done(false))
    socket.once('error', () => done(false))
    socket.once('connect', () => socket.write('PING\r\n'))
    socket.on('data', (chunk: Buffer) => {
      answer += chunk.toString('latin1')
      if (answer.includes('\r\n')) done(answer.startsWith('+PONG'))
    })
  })
}

function spawnServer (port: number): { child: ChildProcess, output: () => string } {
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', tmpdir()]
  const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let text = ''
  const keep = (chunk: Buffer): void => { text = (text + chunk.toString('utf8')).slice(-4000) }
  child.stdout?.on('data', keep)
  child.stderr?.on('data', keep)
  return { child, output: () => text }
}

async function waitExit (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  await new Promise<void>((resolve) => child.once('exit', () => resolve()))
}

/** Starts a redis-server on a free loopback port and waits until it answers PING. */
export async function startRedis (): Promise<TestRedis> {
  ensureInstalled()
  const port = await freePort()
  let current: ChildProcess | undefined

  async function boot (): Promise<void> {
    const { child, output } = spawnServer(port)
    current = child
    let failure: Error | undefined
    child.once('error', (err) => { failure = err })
    const deadline = Date.now() + 10_000
    for (;;) {
      if (failure !== undefined) throw new Error(`redis-server could not be started: ${failure.message}. ${MISSING}`)
      if (child.exitCode !== null) {
        throw new Error(`redis-server exited with code ${child.exitCode} on port ${port}:\n${output()}`)
      }
      if (await ping(port)) return
      if (Date.now() > deadline) {
        child.kill('SIGKILL')
        throw new Error(`redis-server did not accept connections on 127.0.0.1:${port} within 10 s:\n${output()}`)
      }
      await new Promise((resolve) => setTimeout(resolve, 25))
    }
  }

  // A test process that dies without its teardown must not leave a server behind.
  const killOnExit = (): void => { current?.kill('SIGKILL') }
  process.once('exit', killOnExit)

  async function stop (): Promise<void> {
    const child = current
    current = undefined
    if (child === undefined) return
    child.kill('SIGCONT') // a paused server must be able to die
    child.kill('SIGKILL')
    await waitExit(child)
  }

  try {
    await boot()
  } catch (err) {
    process.off('exit', killOnExit)
    throw err
  }
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    stop,
    async restart () {
      await stop()
      await boot()
    },
    pause () { current?.kill('SIGSTOP') },
    resume () { current?.kill('SIGCONT') },
    async close () {
      process.off('exit', killOnExit)
      await stop()
    }
  }
}
