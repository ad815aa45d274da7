import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { startRedis } from '../../../test/helpers/redis-server.js'
import { LogCapture } from '../../../test/helpers/log-capture.js'
import { call, startUpstream } from './fixtures/quota-gateway.js'

const fixture = fileURLToPath(new URL('./fixtures/gateway-process.mjs', import.meta.url))

interface GatewayProcess { url: string, log: LogCapture, child: ChildProcess }

/** Starts fixtures/gateway-process.mjs in its own Node process; its access lines land in `log`. */
async function startProcess (t: Test, redisUrl: string, upstreamUrl: string): Promise<GatewayProcess> {
  const child = spawn(process.execPath, [fixture, redisUrl, upstreamUrl], { stdio: ['ignore', 'pipe', 'pipe'] })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
    await exited
  })
  const log = new LogCapture()
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => { log.write(line + '\n') })
  let stderr = ''
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gateway process did not start in 10 s:\n${stderr}`)), 30_000)
    createInterface({ input: child.stderr as NodeJS.ReadableStream }).on('line', (line) => {
      stderr += line + '\n'
      if (line.startsWith('{"listening"')) {
        clearTimeout(timer)
        resolve((JSON.parse(line) as { listening: string }).listening)
      }
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`gateway process exited with ${code}:\n${stderr}`))
    })
  })
  return { url, log, child }
}

t.test('two gateway processes on one Redis enforce one rate limit and one quota', async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.close())
  const up = await startUpstream()
  t.teardown(() => up.close())
  const [a, b] = await Promise.all([startProcess(t, redis.url, up.url), startProcess(t, redis.url, up.url)])
  t.not(a.child.pid, b.child.pid)

  // Rate limit 5 per minute, requests alternating between the two processes.
  const statuses: number[] = []
  for (let i = 0; i < 8; i++) {
    const gw = i % 2 === 0 ? a : b
    const res = await call(gw, '/pay/charges', 'acme')
    statuses.push(res.status)
    if (res.status === 200) {
      t.equal(res.headers['x-ratelimit-remaining'], String(4 - i), `request ${i + 1} sees the shared count`)
      t.match(res.line, { status: 200, consumer: 'acme', api_name: 'Payments' })
      t.equal(res.line.response_flag, undefined)
      t.equal(res.line.rate_limit_degraded, undefined)
    } else {
      t.match(res.line, {
        status: 429,
        response_flag: 'RLT',
        response_code_details: 'rate_limited',
        error_category: 'rate_limit',
        error_source: 'RateLimit',
        consumer: 'acme',
        api_name: 'Payments'
      })
      t.equal(res.line.error_target, undefined)
      t.ok(Number(res.headers['retry-after']) >= 1 && Number(res.headers['retry-after']) <= 60)
    }
  }
  t.same(statuses, [200, 200, 200, 200, 200, 429, 429, 429], 'five in all, not five per process')
  t.equal(up.hits, 5)

  // Quota 4 per day on another API: its counters are its own.
  const quotaStatuses: number[] = []
  for (let i = 0; i < 6; i++) {
    const res = await call(i % 2 === 0 ? b : a, '/reports/', 'acme')
    quotaStatuses.push(res.status)
    if (res.status === 403) {
      t.match(res.line, {
        status: 403,
        response_flag: 'QEX',
        response_code_details: 'quota_exceeded',
        error_category: 'rate_limit',
        error_source: 'Quota',
        consumer: 'acme',
        api_name: 'Reports'
      })
      t.equal(res.headers['x-quota-remaining'], '0')
    } else {
      t.equal(res.headers['x-quota-remaining'], String(3 - i))
    }
  }
  t.same(quotaStatuses, [200, 200, 200, 200, 403, 403])
  t.equal(up.hits, 9)
  t.equal(a.log.lines.length + b.log.lines.length, 14, 'one access line per request')
})
