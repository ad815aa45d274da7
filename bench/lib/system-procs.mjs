/**
 * Processes the harness runs that are not Node children: nginx and redis-server, plus what the
 * harness reads about any process from /proc (CPU time, RSS). Linux only, like the rest of the bench.
 */
import { spawn, spawnSync } from 'node:child_process'
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import path from 'node:path'

const TICKS_PER_SECOND = 100 // USER_HZ on Linux

/** CPU time (user + system) of a process, in ms. */
export function cpuMs (pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // Fields after the command name, which may itself hold spaces and parentheses.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) * 1000 / TICKS_PER_SECOND
}

/** Resident set size of a process, in bytes. */
export function rssBytes (pid) {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return match === null ? 0 : Number(match[1]) * 1024
}

/** Direct children of a process (nginx's worker). */
export function childPids (pid) {
  const out = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      if (ppid === pid) out.push(Number(entry))
    } catch {}
  }
  return out
}

export async function freePort () {
  return await new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

async function accepts (port) {
  return await new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' })
    socket.setTimeout(500, () => { socket.destroy(); resolve(false) })
    socket.once('error', () => resolve(false))
    socket.once('connect', () => { socket.destroy(); resolve(true) })
  })
}

async function waitForPort (port, child, what, output) {
  const deadline = Date.now() + 10_000
  while (!(await accepts(port))) {
    if (child.exitCode !== null) throw new Error(`${what} exited with code ${child.exitCode}: ${output()}`)
    if (Date.now() > deadline) throw new Error(`${what} did not listen on 127.0.0.1:${port} within 10 s: ${output()}`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

function captured (child) {
  let text = ''
  const keep = (chunk) => { text = (text + chunk.toString('utf8')).slice(-2000) }
  child.stdout?.on('data', keep)
  child.stderr?.on('data', keep)
  return () => text
}

async function stopProcess (child, signal) {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill(signal)
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
  await exited
  clearTimeout(timer)
}

/** `{ version }` of an installed command, or `{ missing }` saying why it cannot be used. */
export function probe (command, args, pattern) {
  const r = spawnSync(command, args, { encoding: 'utf8' })
  if (r.error !== undefined) return { missing: `${command} is not installed (${r.error.code ?? r.error.message})` }
  const match = pattern.exec(`${r.stdout}${r.stderr}`)
  return { version: match === null ? 'unknown' : match[1] }
}

/**
 * nginx as a reverse proxy to the upstream: one worker, HTTP/1.1 keep-alive to the upstream, no
 * access log (the row compares proxying, and Faultline's own "proxy only" row logs nothing either).
 */
export async function startNginx (upstreamUrl, workDir) {
  const dir = path.join(workDir, 'nginx')
  mkdirSync(dir, { recursive: true })
  const port = await freePort()
  const upstream = new URL(upstreamUrl)
  const asRoot = process.getuid?.() === 0
  const conf = `${asRoot ? 'user root;\n' : ''}worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  upstream bench_upstream {
    server ${upstream.host};
    keepalive 64;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://bench_upstream;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`
  writeFileSync(path.join(dir, 'nginx.conf'), conf)
  const child = spawn('nginx', ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-e', path.join(dir, 'error.log')], { stdio: ['ignore', 'pipe', 'pipe'] })
  const output = captured(child)
  await waitForPort(port, child, 'nginx', output)
  return {
    url: `http://127.0.0.1:${port}`,
    pid: child.pid,
    /** master and worker: the worker does the proxying. */
    pids: () => [child.pid, ...childPids(child.pid)],
    stop: () => stopProcess(child, 'SIGQUIT')
  }
}

/** A throwaway redis-server on a free loopback port, without persistence (as test/helpers/redis-server.ts). */
export async function startRedis () {
  const port = await freePort()
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] })
  const output = captured(child)
  await waitForPort(port, child, 'redis-server', output)
  return {
    url: `redis://127.0.0.1:${port}`,
    pid: child.pid,
    stop: () => stopProcess(child, 'SIGKILL')
  }
}
