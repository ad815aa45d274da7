/** Options checked at registration, defaults, and the timers the breakers hold. */
import { createHook } from 'node:async_hooks'
import { setImmediate as tick } from 'node:timers/promises'
import Fastify from 'fastify'
import t from 'tap'
import core from '@faultline/core'
import proxy from '@faultline/proxy'
import breaker, { breakerDefaults, isUpstreamFailure, type FaultlineBreakerOptions } from '@faultline/breaker'
import { send, startBreakerGateway, upstream } from './fixtures/breaker-gateway.js'

async function register (options: unknown): Promise<void> {
  const app = Fastify()
  await app.register(core)
  app.register(async (scope) => {
    await scope.register(breaker, options as FaultlineBreakerOptions)
  }, { prefix: '/api' })
  try {
    await app.ready()
  } finally {
    await app.close()
  }
}

t.test('bad options are rejected at registration with the option and the value', async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    [{ errorThresholdPercentage: 100 }, /option "errorThresholdPercentage" must be a number >= 0 and < 100, got 100/],
    [{ errorThresholdPercentage: -1 }, /"errorThresholdPercentage" must be a number >= 0 and < 100, got -1/],
    [{ errorThresholdPercentage: '50' }, /"errorThresholdPercentage" must be a number >= 0 and < 100, got "50"/],
    [{ volumeThreshold: 0 }, /option "volumeThreshold" must be an integer >= 1, got 0/],
    [{ volumeThreshold: 2.5 }, /"volumeThreshold" must be an integer >= 1, got 2.5/],
    [{ resetTimeout: 0 }, /option "resetTimeout" must be an integer from 1 to 2147483647, got 0/],
    [{ resetTimeout: 2 ** 31 }, /"resetTimeout" must be an integer from 1 to 2147483647, got 2147483648/],
    [{ rollingCountTimeout: 5 }, /option "rollingCountTimeout" must be an integer from 10 to 2147483647, got 5/],
    [{ rollingCountBuckets: 0 }, /option "rollingCountBuckets" must be an integer >= 1, got 0/],
    [{ rollingCountTimeout: 10000, rollingCountBuckets: 3 }, /option "rollingCountBuckets" must be a divisor of rollingCountTimeout \(10000\) leaving buckets of at least 10 ms, got 3/],
    [{ rollingCountTimeout: 100, rollingCountBuckets: 20 }, /"rollingCountBuckets" must be a divisor of rollingCountTimeout \(100\) leaving buckets of at least 10 ms, got 20/],
    [{ capacity: 0 }, /option "capacity" must be an integer >= 1, got 0/],
    [{ name: '' }, /option "name" must be a non-empty string, got ""/],
    [{ errorThreshold: 50 }, /unknown option "errorThreshold"/],
    [{ timeout: 1000 }, /unknown option "timeout"/]
  ]
  for (const [options, message] of cases) {
    await t.rejects(register(options), { name: 'TypeError', message }, JSON.stringify(options))
  }
})

t.test('the core must be registered first', async (t) => {
  const app = Fastify()
  app.register(breaker)
  await t.rejects(async () => { await app.ready() }, /@faultline\/core/)
  await app.close()
})

t.test('one breaker per scope', async (t) => {
  const app = Fastify()
  await app.register(core)
  app.register(async (scope) => {
    await scope.register(breaker, {})
    await scope.register(breaker, {})
  })
  await t.rejects(async () => { await app.ready() }, /a breaker already guards this scope/)
  await app.close()
})

t.test('defaults: 10 judged requests, more than 50% failed', async (t) => {
  t.same(breakerDefaults, { errorThresholdPercentage: 50, volumeThreshold: 10, resetTimeout: 30000, rollingCountTimeout: 10000, rollingCountBuckets: 10 })
  const up = await upstream(t, 503)
  const gw = await startBreakerGateway(t, { targets: [up.url] })
  for (let i = 0; i < 9; i++) await send(gw)
  t.equal(gw.breaker.state, 'closed', '9 failures are below the volume threshold')
  await send(gw)
  t.equal(gw.breaker.state, 'open', 'the 10th opens it')
  const res = await send(gw)
  t.equal(res.headers['retry-after'], '30')
  t.equal(up.hits, 10)
})

t.test('a failure rate equal to the threshold does not open it; above does', async (t) => {
  const up = await upstream(t, 200)
  const gw = await startBreakerGateway(t, { targets: [up.url], breaker: { volumeThreshold: 4 } })
  for (const status of [200, 503, 200, 503]) {
    up.status = status
    await send(gw)
  }
  t.equal(gw.breaker.state, 'closed', '2 of 4 = 50% is not above 50%')
  up.status = 503
  await send(gw)
  t.equal(gw.breaker.state, 'open', '3 of 5 = 60%')
})

t.test('what counts as an upstream failure', async (t) => {
  for (const flag of ['UCF', 'UCT', 'URR', 'URT', 'EPI', 'CAB', 'NRS', 'DNS', 'NRH', 'UPE', 'URS', 'TLE', 'TLI', 'TLM', 'TLN', 'TLC', 'TLP', 'TLA', 'TLH']) {
    t.ok(isUpstreamFailure(flag), flag)
  }
  for (const flag of ['NHU', 'UOF', 'CBO', 'CDC', 'AMF', 'AKI', 'ACD', 'EAE', 'RLT', 'QEX', 'RLE', 'BTL', 'BIV', 'IHD', 'MNA', 'NRF', 'RTO', 'GIE', 'OVL', 'SHD']) {
    t.notOk(isUpstreamFailure(flag), flag)
  }
})

// Live timers, unref'd ones included (process.getActiveResourcesInfo() lists only ref'd ones),
// with the delay they were armed with (Node's Timeout keeps it as `_idleTimeout`). The tests pick
// delays nothing else in the process uses, so other libraries' timers do not get in the way.
const liveTimers = new Map<number, { _idleTimeout?: number }>()
const timerHook = createHook({
  init (id, type, _trigger, resource) { if (type === 'Timeout') liveTimers.set(id, resource as { _idleTimeout?: number }) },
  destroy (id) { liveTimers.delete(id) }
}).enable()
t.teardown(() => { timerHook.disable() })

async function timers (delay: number): Promise<number> {
  await tick() // destroy hooks are delivered asynchronously
  await tick()
  let n = 0
  for (const timer of liveTimers.values()) if (timer._idleTimeout === delay) n++
  return n
}

t.test('a thousand breakers share one rotation timer, and closing releases every timer', async (t) => {
  const app = Fastify()
  await app.register(core)
  for (let i = 0; i < 1000; i++) {
    app.register(async (scope) => {
      await scope.register(breaker, { rollingCountTimeout: 7770 })
    }, { prefix: `/api-${i}` })
  }
  await app.ready()
  t.equal(await timers(777), 1, 'one bucket-rotation interval for all of them')
  await app.close()
  t.equal(await timers(777), 0, 'none left after close')
})

t.test('an open breaker releases its reset timer on close', async (t) => {
  const up = await upstream(t, 503)
  const gw = await startBreakerGateway(t, { targets: [up.url], breaker: { volumeThreshold: 1, resetTimeout: 600000, rollingCountTimeout: 9990 } })
  await send(gw)
  t.equal(gw.breaker.state, 'open')
  t.equal(await timers(600000), 1, 'the reset timer is armed')
  t.equal(await timers(999), 1, 'the rotation timer runs')
  await gw.app.close()
  t.equal(await timers(600000), 0, 'reset timer cleared')
  t.equal(await timers(999), 0, 'rotation timer cleared')
})

t.test('a breaker registered after the proxy guards nothing, and says so', async (t) => {
  const lines: Array<Record<string, unknown>> = []
  const app = Fastify({ logger: { level: 'warn', stream: { write: (line: string) => { lines.push(JSON.parse(line)) } } } })
  await app.register(core)
  await app.register(async (scope) => {
    await scope.register(proxy, { name: 'Late', upstream: { targets: ['http://127.0.0.1:1'] } })
    await scope.register(breaker, {})
  }, { prefix: '/late' })
  await app.ready()
  t.match(lines, [{ level: 40, circuit_breaker: '/late', msg: "faultline: the circuit breaker guards no route; register it before the proxy, in the API's scope" }])
  await app.close()
})
