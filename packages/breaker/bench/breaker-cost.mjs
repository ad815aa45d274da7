/**
 * What 1,000 breakers cost, side by side in one process: opossum's defaults, opossum tuned the
 * way this package tunes it but with its own rotation interval per breaker, and this package
 * (one rotation interval shared by all). Heap after GC, live timers (unref'd ones included),
 * CPU spent idle, and the cost of judging requests.
 *
 *   npx tsc -b tsconfig.build.json && node --expose-gc packages/breaker/bench/breaker-cost.mjs
 */
import { createHook } from 'node:async_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import CircuitBreaker from 'opossum'
import Fastify from 'fastify'
import core from '@faultline/core'
import breakerPlugin from '@faultline/breaker'
import { ApiBreaker } from '../dist/api-breaker.js'
import { validateBreakerOptions } from '../dist/options.js'

if (typeof globalThis.gc !== 'function') {
  console.error('run with node --expose-gc')
  process.exit(1)
}

const N = 1000
const IDLE_MS = Number(process.env.IDLE_MS ?? 5000)

const liveTimers = new Set()
createHook({
  init (id, type) { if (type === 'Timeout') liveTimers.add(id) },
  destroy (id) { liveTimers.delete(id) }
}).enable()

async function settle () {
  for (let i = 0; i < 3; i++) {
    await sleep(20)
    globalThis.gc()
  }
}

const quietLog = { warn () {}, info () {}, debug () {}, error () {} }
const resolved = async () => true
const pending = () => new Promise(() => {})

const variants = {
  'nothing (noise floor)': () => ({ shutdown () {} }),
  'opossum defaults': (action = resolved) => new CircuitBreaker(action, {}),
  'opossum tuned, own interval': (action = resolved) => new CircuitBreaker(action, {
    timeout: false, rollingPercentilesEnabled: false, enableSnapshots: false
  }),
  '@faultline/breaker': () => new ApiBreaker(validateBreakerOptions({}), quietLog, { apiName: () => 'api' })
}

async function measure (name, make) {
  await settle()
  const timersBefore = liveTimers.size
  const heapBefore = process.memoryUsage().heapUsed
  const made = []
  for (let i = 0; i < N; i++) made.push(make())
  await settle()
  const heap = process.memoryUsage().heapUsed - heapBefore
  const timers = liveTimers.size - timersBefore
  const cpuBefore = process.cpuUsage()
  const t0 = performance.now()
  await sleep(IDLE_MS)
  const wall = performance.now() - t0
  const cpu = process.cpuUsage(cpuBefore)
  const idleCpuMsPerS = ((cpu.user + cpu.system) / 1000) / (wall / 1000)
  for (const b of made) b.shutdown()
  await settle()
  return { name, heapKiB: heap / 1024, timers, idleCpuMsPerS, timersLeft: liveTimers.size - timersBefore }
}

/** Judged requests per second through one breaker, and its heap once the window holds them. */
async function throughput (name) {
  const REQS = 200_000
  let b
  let judge
  if (name === '@faultline/breaker') {
    b = new ApiBreaker(validateBreakerOptions({ volumeThreshold: 1e9 }), quietLog, { apiName: () => 'api' })
    const record = { response_flag: undefined, response_source: 'upstream' }
    judge = () => { b.admit(record); b.settle(record) }
  } else {
    b = variants[name]()
    // The action is the request: resolved later, like a proxied call.
    judge = () => { b.fire().catch(() => {}) }
  }
  await settle()
  const heapBefore = process.memoryUsage().heapUsed
  const t0 = performance.now()
  for (let i = 0; i < REQS; i++) {
    judge()
    if (i % 1000 === 999) await new Promise((resolve) => setImmediate(resolve))
  }
  await sleep(10)
  const ms = performance.now() - t0
  await settle()
  const heap = process.memoryUsage().heapUsed - heapBefore
  b.shutdown()
  return { name, perSecond: REQS / (ms / 1000), windowHeapKiB: heap / 1024 }
}

const rows = []
for (const [name, make] of Object.entries(variants)) rows.push(await measure(name, make))

// The plugin in real apps: 1,000 API scopes, each with one route, with and without a breaker.
async function apps (withBreaker) {
  await settle()
  const timersBefore = liveTimers.size
  const heapBefore = process.memoryUsage().heapUsed
  const app = Fastify()
  await app.register(core)
  for (let i = 0; i < N; i++) {
    app.register(async (scope) => {
      if (withBreaker) await scope.register(breakerPlugin, {})
      scope.get('/*', { config: { apiName: `api-${i}` } }, async () => 'ok')
    }, { prefix: `/api-${i}` })
  }
  await app.ready()
  await settle()
  const heap = process.memoryUsage().heapUsed - heapBefore
  const timers = liveTimers.size - timersBefore
  await app.close()
  return { heap, timers }
}
const bare = await apps(false)
const guarded = await apps(true)

const base = rows[1]
console.log(`\n${N} breakers (node ${process.version}, idle ${IDLE_MS} ms)\n`)
console.log('| variant | heap (KiB) | heap vs defaults | timers | idle CPU (ms/s) | CPU vs defaults | timers after shutdown |')
console.log('|---|---|---|---|---|---|---|')
for (const r of rows) {
  console.log(`| ${r.name} | ${r.heapKiB.toFixed(0)} | ${(r.heapKiB / base.heapKiB).toFixed(2)} | ${r.timers} | ${r.idleCpuMsPerS.toFixed(2)} | ${(r.idleCpuMsPerS / base.idleCpuMsPerS).toFixed(3)} | ${r.timersLeft} |`)
}
console.log(`\n${N} Fastify API scopes: +${((guarded.heap - bare.heap) / 1024).toFixed(0)} KiB heap with a breaker each (${(bare.heap / 1024).toFixed(0)} KiB without, ${(guarded.heap / 1024).toFixed(0)} KiB with: x${(guarded.heap / bare.heap).toFixed(2)}); timers +${guarded.timers - bare.timers}`)

/** Timers armed while 1,000 requests are in flight through one breaker. */
async function inFlightTimers (name) {
  const b = variants[name](pending)
  await settle()
  const before = liveTimers.size
  // Requests still waiting on the upstream.
  if (name === '@faultline/breaker') for (let i = 0; i < N; i++) b.admit({})
  else for (let i = 0; i < N; i++) b.fire().catch(() => {})
  await sleep(20)
  const armed = liveTimers.size - before
  b.shutdown()
  return armed
}
console.log('')
for (const name of Object.keys(variants).slice(1)) console.log(`timers armed while ${N} requests are in flight through one breaker, ${name}: ${await inFlightTimers(name)}`)

const tp = []
for (const name of Object.keys(variants).slice(1)) tp.push(await throughput(name))
console.log('\n| one breaker, 200,000 judged requests | per second | heap held by the window (KiB) |')
console.log('|---|---|---|')
for (const r of tp) console.log(`| ${r.name} | ${Math.round(r.perSecond).toLocaleString('en')} | ${r.windowHeapKiB.toFixed(0)} |`)
