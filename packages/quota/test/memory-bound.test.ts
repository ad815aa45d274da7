import t from 'tap'
import Fastify from 'fastify'
import core from '@faultline/core'
import accessLog from '@faultline/access-log'
import quota, { MemoryCounterStore } from '@faultline/quota'
import { LogCapture } from '../../../test/helpers/log-capture.js'

t.test('a flood of distinct client IPs never holds more than cache.max keys per store', async (t) => {
  const log = new LogCapture()
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(core)
  await app.register(accessLog, { destination: log })
  let stores: { rateLimit: MemoryCounterStore, quota: MemoryCounterStore } | undefined
  await app.register(async (scope) => {
    await scope.register(quota, {
      rateLimit: { max: 1, timeWindow: '1 hour' },
      quota: { max: 1, period: 'month' },
      cache: { max: 50 }
    })
    scope.get('/', { config: { apiName: 'Flood' } }, async () => 'ok')
    stores = {
      rateLimit: scope.faultlineQuota.rateLimitStore as MemoryCounterStore,
      quota: scope.faultlineQuota.quotaStore as MemoryCounterStore
    }
  })
  await app.ready()
  const { rateLimit, quota: quotaStore } = stores as NonNullable<typeof stores>
  t.equal(rateLimit.maxKeys, 50)

  const flood = 1000
  let peak = 0
  for (let i = 0; i < flood; i++) {
    const remoteAddress = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`
    const res = await app.inject({ url: '/', remoteAddress })
    if (res.statusCode !== 200) t.fail(`request ${i} from a new address was ${res.statusCode}`)
    peak = Math.max(peak, rateLimit.size, quotaStore.size)
  }
  t.equal(peak, 50, 'never more than cache.max keys, at any point of the flood')
  t.equal(rateLimit.size, 50, 'the rate-limit store stays at its cap')
  t.equal(quotaStore.size, 50, 'so does the quota store')
  t.equal(rateLimit.evictions, flood - 50, 'the least recently used keys made room')
  t.equal(quotaStore.evictions, flood - 50)

  // The most recent clients are still counted.
  const last = await app.inject({ url: '/', remoteAddress: `10.0.${((flood - 1) >> 8) & 255}.${(flood - 1) & 255}` })
  t.equal(last.statusCode, 429)
  const lines = await log.waitFor(flood + 1)
  t.match(lines[flood], { status: 429, response_flag: 'RLT', response_code_details: 'rate_limited', error_source: 'RateLimit', client_ip: '10.0.3.231', api_name: 'Flood' })
  t.equal(lines[flood].consumer, undefined)
})

t.test('MemoryCounterStore: least recently used eviction, windows that expire on the clock', async (t) => {
  let now = 1_000_000
  const store = new MemoryCounterStore({ maxKeys: 2, clock: () => now })
  t.same(store.incrSync('a', 1000), { current: 1, ttl: 1000 })
  t.same(store.incrSync('b', 1000), { current: 1, ttl: 1000 })
  now += 400
  t.same(store.incrSync('a', 1000), { current: 2, ttl: 600 }, 'a is now the most recently used')
  store.incrSync('c', 1000)
  t.equal(store.size, 2)
  t.equal(store.evictions, 1)
  t.same(store.incrSync('a', 1000), { current: 3, ttl: 600 }, 'a survived')
  t.same(store.incrSync('b', 1000), { current: 1, ttl: 1000 }, 'b was evicted: it starts over')
  now += 600
  t.same(store.incrSync('a', 1000), { current: 1, ttl: 1000 }, "a's window ended: a new one starts")
  await store.close()
  t.equal(store.size, 0)
})

t.test('MemoryCounterStore: a key counted in the last maxKeys / 2 counts is never the one dropped', async (t) => {
  const store = new MemoryCounterStore({ maxKeys: 100 })
  // A busy key among a flood of one-off keys: it is moved to the end only now and then, yet never dropped.
  let restarts = 0
  for (let i = 0; i < 5_000; i++) {
    if (store.incrSync('busy', 60_000).current !== i + 1) restarts++
    store.incrSync(`once-${i}`, 60_000)
  }
  t.equal(restarts, 0, 'the busy key kept its count all along')
  t.equal(store.size, 100)
  t.equal(store.evictions, 5_000 - 99, 'every one-off key but the newest 99 made room')
  // A key last counted more than maxKeys counts ago is gone.
  const quiet = new MemoryCounterStore({ maxKeys: 100 })
  quiet.incrSync('quiet', 60_000)
  for (let i = 0; i < 100; i++) quiet.incrSync(`once-${i}`, 60_000)
  t.equal(quiet.incrSync('quiet', 60_000).current, 1, 'the least recently counted key was dropped')
  await store.close()
  await quiet.close()
})

t.test('counter keys kept per consumer: past 10,000 consumers they are built again and count on', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(core)
  await app.register(async (scope) => {
    // Stands in for auth: the consumer is named by a header.
    scope.addHook('onRequest', (request, reply, done) => {
      if (reply.faultline !== null) reply.faultline.consumer = request.headers['x-who'] as string
      done()
    })
    await scope.register(quota, {
      rateLimit: { max: 2, timeWindow: '1 hour' },
      quota: { max: 3, period: 'month' },
      cache: { max: 20_000 }
    })
    scope.get('/', { config: { apiName: 'Many' } }, async () => 'ok')
  })
  await app.ready()
  const call = async (who: string): Promise<{ status: number, rateLimit: unknown, quota: unknown }> => {
    const res = await app.inject({ url: '/', headers: { 'x-who': who } })
    return { status: res.statusCode, rateLimit: res.headers['x-ratelimit-remaining'], quota: res.headers['x-quota-remaining'] }
  }
  t.same(await call('first'), { status: 200, rateLimit: '1', quota: '2' })
  let others = 0
  for (let i = 0; i < 10_050; i++) if ((await call(`consumer-${i}`)).status === 200) others++
  t.equal(others, 10_050, 'every other consumer has counters of its own')
  t.same(await call('first'), { status: 200, rateLimit: '0', quota: '1' }, 'the first consumer\'s counts went on from where they were')
  t.equal((await call('first')).status, 429, 'and its rate limit holds')
  t.same(await call('consumer-7'), { status: 200, rateLimit: '0', quota: '1' })
})
