import t, { type Test } from 'tap'
import Fastify from 'fastify'
import core from '@faultline/core'
import quota from '@faultline/quota'
import { call, startQuotaGateway, startUpstream, TestClock, type QuotaApi, type QuotaGateway, type Upstream } from './fixtures/quota-gateway.js'

async function setup (t: Test, apis: QuotaApi[]): Promise<{ gw: QuotaGateway, up: Upstream }> {
  const up = await startUpstream()
  const gw = await startQuotaGateway(up.url, apis)
  t.teardown(async () => {
    await gw.app.close()
    await up.close()
  })
  return { gw, up }
}

t.test('max requests pass with counting-down headers; request max+1 is RLT 429 with Retry-After', async (t) => {
  const clock = new TestClock('2026-03-10T12:00:00.000Z')
  const { gw, up } = await setup(t, [{ name: 'Payments', prefix: '/pay', quota: { rateLimit: { max: 3, timeWindow: '1 minute' }, clock: clock.read } }])

  for (let i = 1; i <= 3; i++) {
    const res = await call(gw, '/pay/charges', 'acme')
    t.equal(res.status, 200, `request ${i} passes`)
    t.equal(res.headers['x-ratelimit-limit'], '3')
    t.equal(res.headers['x-ratelimit-remaining'], String(3 - i))
    t.equal(res.headers['x-ratelimit-reset'], String(60 - 10 * (i - 1)), 'seconds until the window ends')
    t.equal(res.headers['retry-after'], undefined)
    t.match(res.line, { status: 200, consumer: 'acme', api_name: 'Payments', response_source: 'upstream' })
    t.equal(res.line.response_flag, undefined)
    t.equal(res.line.rate_limit_degraded, undefined)
    clock.advance(10_000)
  }

  const limited = await call(gw, '/pay/charges', 'acme')
  t.equal(limited.status, 429)
  t.equal(limited.headers['retry-after'], '30', 'the window opened 30 s ago: 30 s left')
  t.equal(limited.headers['x-ratelimit-limit'], '3')
  t.equal(limited.headers['x-ratelimit-remaining'], '0')
  t.equal(limited.headers['x-ratelimit-reset'], '30')
  t.same(JSON.parse(limited.body), {
    statusCode: 429,
    error: 'Too Many Requests',
    message: 'Rate limit exceeded',
    request_id: limited.line.request_id
  })
  t.match(limited.line, {
    status: 429,
    response_flag: 'RLT',
    response_code_details: 'rate_limited',
    error_category: 'rate_limit',
    error_source: 'RateLimit',
    consumer: 'acme',
    api_name: 'Payments',
    response_source: 'gateway'
  })
  t.equal(limited.line.error_target, undefined)
  t.equal(up.hits, 3, 'exactly max requests reached the upstream')
})

t.test('the window resets: the count starts again when it ends, not a millisecond before', async (t) => {
  const clock = new TestClock('2026-03-10T12:00:00.000Z')
  const { gw, up } = await setup(t, [{ name: 'Payments', prefix: '/pay', quota: { rateLimit: { max: 2, timeWindow: 1000 }, clock: clock.read } }])
  t.equal((await call(gw, '/pay/', 'acme')).status, 200)
  t.equal((await call(gw, '/pay/', 'acme')).status, 200)
  clock.advance(999)
  const still = await call(gw, '/pay/', 'acme')
  t.equal(still.status, 429)
  t.equal(still.headers['retry-after'], '1')
  t.equal(still.line.response_flag, 'RLT')
  clock.advance(1)
  const fresh = await call(gw, '/pay/', 'acme')
  t.equal(fresh.status, 200, 'a new window at exactly timeWindow ms')
  t.equal(fresh.headers['x-ratelimit-remaining'], '1')
  t.equal(fresh.headers['x-ratelimit-reset'], '1')
  t.equal(fresh.line.response_flag, undefined)
  t.equal(up.hits, 3)
})

t.test('each consumer has its own limit; without a consumer the client IP is the key', async (t) => {
  const { gw } = await setup(t, [
    { name: 'Payments', prefix: '/pay', quota: { rateLimit: { max: 1, timeWindow: '1 minute' } } },
    { name: 'Open', prefix: '/open', auth: false, quota: { rateLimit: { max: 1, timeWindow: '1 minute' } } }
  ])
  t.equal((await call(gw, '/pay/', 'acme')).status, 200)
  t.match((await call(gw, '/pay/', 'acme')).line, { status: 429, response_flag: 'RLT', consumer: 'acme' })
  const other = await call(gw, '/pay/', 'globex')
  t.equal(other.status, 200, "acme's limit is not globex's")
  t.equal(other.line.consumer, 'globex')

  const anonymous = await call(gw, '/open/')
  t.equal(anonymous.status, 200)
  t.equal(anonymous.line.consumer, undefined)
  const again = await call(gw, '/open/')
  t.match(again.line, { status: 429, response_flag: 'RLT', response_code_details: 'rate_limited', error_source: 'RateLimit', client_ip: '127.0.0.1', api_name: 'Open' })
  t.equal(again.line.consumer, undefined)
})

t.test("key: 'ip' limits the address, whichever consumer it authenticates as", async (t) => {
  const { gw } = await setup(t, [{ name: 'Payments', prefix: '/pay', quota: { rateLimit: { max: 2, timeWindow: '1 minute', key: 'ip' } } }])
  t.equal((await call(gw, '/pay/', 'acme')).status, 200)
  t.equal((await call(gw, '/pay/', 'globex')).status, 200)
  const third = await call(gw, '/pay/', 'initech')
  t.match(third.line, { status: 429, response_flag: 'RLT', error_source: 'RateLimit', consumer: 'initech', client_ip: '127.0.0.1' })
})

t.test('two APIs do not share counters', async (t) => {
  const { gw } = await setup(t, [
    { name: 'Payments', prefix: '/pay', quota: { rateLimit: { max: 1, timeWindow: '1 minute' } } },
    { name: 'Orders', prefix: '/orders', quota: { rateLimit: { max: 1, timeWindow: '1 minute' } } }
  ])
  t.equal((await call(gw, '/pay/', 'acme')).status, 200)
  t.match((await call(gw, '/pay/', 'acme')).line, { response_flag: 'RLT', api_name: 'Payments' })
  const orders = await call(gw, '/orders/', 'acme')
  t.equal(orders.status, 200)
  t.match(orders.line, { api_name: 'Orders', consumer: 'acme' })
  t.match((await call(gw, '/orders/', 'acme')).line, { status: 429, response_flag: 'RLT', api_name: 'Orders' })
})

t.test('APIs of one app keep their own limits (one @fastify/rate-limit registration serves them all)', async (t) => {
  const { gw } = await setup(t, [
    { name: 'Payments', prefix: '/pay', quota: { rateLimit: { max: 1, timeWindow: '1 minute' } } },
    { name: 'Orders', prefix: '/orders', quota: { rateLimit: { max: 3, timeWindow: '1 hour' } } }
  ])
  const pay = await call(gw, '/pay/', 'acme')
  t.equal(pay.headers['x-ratelimit-limit'], '1')
  const orders = []
  for (let i = 0; i < 4; i++) orders.push(await call(gw, '/orders/', 'acme'))
  t.same(orders.map((o) => o.status), [200, 200, 200, 429])
  t.equal(orders[0].headers['x-ratelimit-limit'], '3')
  t.same(orders.slice(0, 3).map((o) => o.headers['x-ratelimit-remaining']), ['2', '1', '0'])
  t.ok(Number(orders[3].headers['retry-after']) > 60, 'the hour-long window of Orders, not the minute of Payments')
  t.match((await call(gw, '/pay/', 'acme')).line, { status: 429, response_flag: 'RLT', api_name: 'Payments' })
})

t.test('a failed authentication is answered before the rate limit and is not counted', async (t) => {
  const { gw, up } = await setup(t, [{ name: 'Payments', prefix: '/pay', quota: { rateLimit: { max: 1, timeWindow: '1 minute' } } }])
  const denied = await call(gw, '/pay/', 'nobody')
  t.match(denied.line, { status: 401, response_flag: 'AKI', error_source: 'ApiKeyAuth' })
  t.equal(denied.headers['x-ratelimit-limit'], undefined)
  const ok = await call(gw, '/pay/', 'acme')
  t.equal(ok.status, 200)
  t.equal(ok.headers['x-ratelimit-remaining'], '0')
  t.equal(up.hits, 1)
})

t.test('routes may opt out with config.rateLimit: false and config.quota: false', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(core)
  await app.register(async (scope) => {
    await scope.register(quota, { rateLimit: { max: 1, timeWindow: 60_000 }, quota: { max: 1, period: 'day' } })
    scope.get('/limited', { config: { apiName: 'A' } }, async () => 'ok')
    scope.get('/free', { config: { apiName: 'A', rateLimit: false, quota: false } }, async () => 'ok')
    scope.get('/quota-only', { config: { apiName: 'A', rateLimit: false } }, async () => 'ok')
  })
  t.equal((await app.inject('/limited')).statusCode, 200)
  t.equal((await app.inject('/limited')).statusCode, 429)
  for (let i = 0; i < 3; i++) {
    const free = await app.inject('/free')
    t.equal(free.statusCode, 200)
    t.equal(free.headers['x-ratelimit-limit'], undefined)
    t.equal(free.headers['x-quota-limit'], undefined)
  }
  // /limited consumed the day's only request of this client: the quota is per API, not per route.
  const quotaOnly = await app.inject('/quota-only')
  t.equal(quotaOnly.statusCode, 403)
  t.equal(quotaOnly.headers['x-ratelimit-limit'], undefined)
  t.equal(quotaOnly.headers['x-quota-remaining'], '0')
})

t.test('per-route rate-limit options are refused when the route is added', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(core)
  await app.register(async (scope) => {
    await scope.register(quota, { rateLimit: { max: 1, timeWindow: 60_000 } })
    t.throws(() => scope.get('/x', { config: { rateLimit: { max: 5 } } }, async () => 'ok'),
      /config\.rateLimit may only be false/)
  })
})
