import t, { type Test } from 'tap'
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import core from '@faultline/core'
import quota, { RedisCounterStore, type FaultlineQuotaOptions } from '@faultline/quota'
import { startRedis, type TestRedis } from '../../../test/helpers/redis-server.js'
import { httpRequest } from '../../../test/helpers/http-client.js'
import { call, startQuotaGateway, startUpstream, TestClock, type Call, type QuotaApi, type QuotaGateway, type Upstream } from './fixtures/quota-gateway.js'

async function redisServer (t: Test): Promise<TestRedis> {
  const redis = await startRedis()
  t.teardown(() => redis.close())
  return redis
}

async function setup (t: Test, apis: QuotaApi[]): Promise<{ gw: QuotaGateway, up: Upstream }> {
  const up = await startUpstream()
  const gw = await startQuotaGateway(up.url, apis)
  t.teardown(async () => {
    await gw.app.close()
    await up.close()
  })
  return { gw, up }
}

function payments (options: FaultlineQuotaOptions): QuotaApi[] {
  return [{ name: 'Payments', prefix: '/pay', quota: options }]
}

/** Sends requests until one is enforced again (no degraded line), as ioredis reconnects in the background. */
async function untilEnforced (gw: QuotaGateway, path: string, who: string): Promise<{ recovered: Call, attempts: number }> {
  const deadline = Date.now() + 5000
  for (let attempts = 1; ; attempts++) {
    const res = await call(gw, path, who)
    if (res.line.rate_limit_degraded === undefined && res.line.response_flag !== 'RLE') return { recovered: res, attempts }
    if (Date.now() > deadline) throw new Error('enforcement did not resume within 5 s of Redis coming back')
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

function assertDegraded (t: Test, res: Call, consumer: string): void {
  t.equal(res.status, 200, 'fail-open: the request goes through')
  t.match(res.line, { status: 200, rate_limit_degraded: true, consumer, api_name: 'Payments', response_source: 'upstream' })
  t.equal(res.line.response_flag, undefined, 'no flag on a degraded line')
  t.equal(res.headers['x-ratelimit-limit'], undefined, 'no limit headers when nothing was counted')
  t.equal(res.headers['x-quota-limit'], undefined)
  t.ok(res.elapsed < 1000, `answered in ${res.elapsed} ms, without waiting on Redis`)
}

function assertRle (t: Test, res: Call, redis: TestRedis, source: 'RateLimit' | 'Quota', consumer: string): void {
  t.equal(res.status, 503)
  t.same(JSON.parse(res.body), {
    statusCode: 503,
    error: 'Service Unavailable',
    message: 'The rate limit service is unavailable',
    request_id: res.line.request_id
  })
  t.match(res.line, {
    status: 503,
    response_flag: 'RLE',
    response_code_details: 'rate_limit_store_error',
    error_category: 'rate_limit',
    error_source: source,
    error_target: `127.0.0.1:${redis.port}`,
    consumer,
    api_name: 'Payments',
    response_source: 'gateway'
  })
  t.equal(res.line.rate_limit_degraded, undefined)
  t.ok(res.elapsed < 1000, `answered in ${res.elapsed} ms`)
}

t.test('with Redis: exact limits, headers, and keys namespaced per API and consumer, with expiries', async (t) => {
  const redis = await redisServer(t)
  const clock = new TestClock('2026-03-10T12:00:00.000Z')
  const options = { rateLimit: { max: 2, timeWindow: '1 minute' }, quota: { max: 5, period: 'day' }, redis: { url: redis.url }, clock: clock.read } as const
  const { gw, up } = await setup(t, [
    { name: 'Payments', prefix: '/pay', quota: options },
    { name: 'Order Desk', prefix: '/orders', quota: options }
  ])
  const first = await call(gw, '/pay/', 'acme')
  t.equal(first.status, 200)
  t.equal(first.headers['x-ratelimit-limit'], '2')
  t.equal(first.headers['x-ratelimit-remaining'], '1')
  t.equal(first.headers['x-ratelimit-reset'], '60')
  t.equal(first.headers['x-quota-remaining'], '4')
  t.equal(first.headers['x-quota-reset'], String(12 * 3600))
  t.equal((await call(gw, '/pay/', 'acme')).headers['x-ratelimit-remaining'], '0')
  const limited = await call(gw, '/pay/', 'acme')
  t.equal(limited.status, 429)
  t.equal(limited.headers['retry-after'], '60')
  t.match(limited.line, { status: 429, response_flag: 'RLT', response_code_details: 'rate_limited', error_source: 'RateLimit', consumer: 'acme' })
  t.equal(limited.line.error_target, undefined)
  t.equal((await call(gw, '/orders/', 'acme')).status, 200, 'another API, its own counters')
  t.equal(up.hits, 3)

  const inspect = new Redis(redis.url)
  t.teardown(() => inspect.quit())
  t.same((await inspect.keys('*')).sort(), [
    'faultline:q:Order%20Desk:d2026-03-10:c:acme',
    'faultline:q:Payments:d2026-03-10:c:acme',
    'faultline:rl:Order%20Desk:c:acme',
    'faultline:rl:Payments:c:acme'
  ])
  t.equal(await inspect.get('faultline:rl:Payments:c:acme'), '3', 'the refused request was counted by the rate limit')
  t.equal(await inspect.get('faultline:q:Payments:d2026-03-10:c:acme'), '2', 'but not by the quota')
  const rlTtl = await inspect.pttl('faultline:rl:Payments:c:acme')
  t.ok(rlTtl > 55_000 && rlTtl <= 60_000, `rate-limit key expires with its window (${rlTtl} ms)`)
  const quotaTtl = await inspect.pttl('faultline:q:Payments:d2026-03-10:c:acme')
  t.ok(quotaTtl > 12 * 3600_000 && quotaTtl <= 12 * 3600_000 + 60_000, `quota key expires after its period (${quotaTtl} ms)`)
})

t.test('with Redis the window ends when its key expires', async (t) => {
  const redis = await redisServer(t)
  const { gw, up } = await setup(t, payments({ rateLimit: { max: 1, timeWindow: 300 }, redis: { url: redis.url } }))
  t.equal((await call(gw, '/pay/', 'acme')).status, 200)
  const limited = await call(gw, '/pay/', 'acme')
  t.match(limited.line, { status: 429, response_flag: 'RLT', error_source: 'RateLimit', consumer: 'acme' })
  t.equal(limited.headers['retry-after'], '1', 'under a second left, rounded up')
  await new Promise((resolve) => setTimeout(resolve, 350))
  const fresh = await call(gw, '/pay/', 'acme')
  t.equal(fresh.status, 200)
  t.equal(fresh.headers['x-ratelimit-remaining'], '0')
  t.equal(fresh.line.response_flag, undefined)
  t.equal(up.hits, 2)
})

t.test('Redis killed mid-run, failMode open: requests go through, lines say rate_limit_degraded, then enforcement resumes', async (t) => {
  const redis = await redisServer(t)
  const { gw, up } = await setup(t, payments({ rateLimit: { max: 2, timeWindow: '1 minute' }, quota: { max: 100, period: 'day' }, redis: { url: redis.url } }))
  const before = await call(gw, '/pay/', 'acme')
  t.equal(before.headers['x-ratelimit-remaining'], '1')

  await redis.stop()
  for (let i = 0; i < 4; i++) assertDegraded(t, await call(gw, '/pay/', 'acme'), 'acme')
  t.equal(up.hits, 5, 'every request reached the upstream')
  const outages = gw.appLog.filter((l) => typeof l.msg === 'string' && l.msg.includes('store is unavailable'))
  t.equal(outages.length, 1, 'the outage is logged once, not per request')
  t.match(outages[0], { level: 50, store_target: `127.0.0.1:${redis.port}`, fail_mode: 'open', reason: /^(not_connected|connection_refused|connection_reset)$/ })

  await redis.restart()
  const { recovered } = await untilEnforced(gw, '/pay/', 'acme')
  t.equal(recovered.status, 200)
  t.equal(recovered.headers['x-ratelimit-remaining'], '1', 'a fresh Redis, a fresh count')
  t.equal(recovered.headers['x-quota-remaining'], '99')
  t.equal(recovered.line.rate_limit_degraded, undefined)
  t.equal((await call(gw, '/pay/', 'acme')).status, 200)
  const limited = await call(gw, '/pay/', 'acme')
  t.match(limited.line, { status: 429, response_flag: 'RLT', error_source: 'RateLimit', consumer: 'acme' })
  t.match(gw.appLog.filter((l) => l.msg === 'faultline: the rate-limit store answers again; limits are enforced'),
    [{ level: 40, store_target: `127.0.0.1:${redis.port}` }], 'and its end, once')
})

t.test('Redis killed mid-run, failMode closed: RLE 503 naming Redis, then enforcement resumes', async (t) => {
  const redis = await redisServer(t)
  const { gw, up } = await setup(t, payments({ rateLimit: { max: 2, timeWindow: '1 minute' }, quota: { max: 100, period: 'day' }, redis: { url: redis.url }, failMode: 'closed' }))
  t.equal((await call(gw, '/pay/', 'acme')).status, 200)

  await redis.stop()
  for (let i = 0; i < 3; i++) assertRle(t, await call(gw, '/pay/', 'acme'), redis, 'RateLimit', 'acme')
  t.equal(up.hits, 1, 'no refused request reached the upstream')

  await redis.restart()
  const { recovered } = await untilEnforced(gw, '/pay/', 'acme')
  t.equal(recovered.status, 200)
  t.equal(recovered.headers['x-ratelimit-remaining'], '1')
  t.equal((await call(gw, '/pay/', 'acme')).status, 200)
  t.match((await call(gw, '/pay/', 'acme')).line, { status: 429, response_flag: 'RLT', consumer: 'acme' })
})

t.test('a quota-only API names Quota as the failed source', async (t) => {
  const redis = await redisServer(t)
  const closed = await setup(t, payments({ quota: { max: 10, period: 'month' }, redis: { url: redis.url }, failMode: 'closed' }))
  const open = await setup(t, payments({ quota: { max: 10, period: 'month' }, redis: { url: redis.url } }))
  t.equal((await call(closed.gw, '/pay/', 'globex')).headers['x-quota-remaining'], '9')
  await redis.stop()
  assertRle(t, await call(closed.gw, '/pay/', 'globex'), redis, 'Quota', 'globex')
  assertDegraded(t, await call(open.gw, '/pay/', 'globex'), 'globex')
})

t.test('a frozen Redis costs a request at most commandTimeout, in both modes', async (t) => {
  const redis = await redisServer(t)
  const options = { rateLimit: { max: 50, timeWindow: '1 minute' }, quota: { max: 100, period: 'day' } } as const
  const open = await setup(t, payments({ ...options, redis: { url: redis.url, commandTimeout: 250 } }))
  const closed = await setup(t, payments({ ...options, redis: { url: redis.url, commandTimeout: 250 }, failMode: 'closed' }))
  t.equal((await call(open.gw, '/pay/', 'acme')).status, 200)
  t.equal((await call(closed.gw, '/pay/', 'acme')).status, 200)

  redis.pause()
  t.teardown(() => redis.resume())
  const degraded = await call(open.gw, '/pay/', 'acme')
  t.match(degraded.line, { status: 200, rate_limit_degraded: true, consumer: 'acme' })
  t.equal(degraded.line.response_flag, undefined)
  t.ok(degraded.elapsed >= 240, `waited for the command timeout (${degraded.elapsed} ms)`)
  t.ok(degraded.elapsed < 500, `once: the quota does not wait on the Redis that just failed (${degraded.elapsed} ms)`)
  const refused = await call(closed.gw, '/pay/', 'acme')
  assertRle(t, refused, redis, 'RateLimit', 'acme')
  t.ok(refused.elapsed >= 240 && refused.elapsed < 500, `refused after one command timeout (${refused.elapsed} ms)`)

  redis.resume()
  t.equal((await untilEnforced(open.gw, '/pay/', 'acme')).recovered.status, 200)
  t.equal((await untilEnforced(closed.gw, '/pay/', 'acme')).recovered.status, 200)
})

t.test('Redis down when the gateway starts: it starts, fails open, and enforces once Redis is up', async (t) => {
  const redis = await redisServer(t)
  await redis.stop()
  const { gw } = await setup(t, payments({ rateLimit: { max: 1, timeWindow: '1 minute' }, redis: { url: redis.url } }))
  assertDegraded(t, await call(gw, '/pay/', 'initech'), 'initech')
  await redis.restart()
  const { recovered } = await untilEnforced(gw, '/pay/', 'initech')
  t.equal(recovered.headers['x-ratelimit-remaining'], '0')
  t.match((await call(gw, '/pay/', 'initech')).line, { status: 429, response_flag: 'RLT', consumer: 'initech' })
})

t.test('a client the plugin created is quit on close; one passed in is used and left to its owner', async (t) => {
  const redis = await redisServer(t)
  const owned = await setup(t, payments({ rateLimit: { max: 5, timeWindow: 60_000 }, redis: { url: redis.url } }))
  const ownedStore = owned.gw.plugins.Payments.rateLimitStore as RedisCounterStore
  t.equal(ownedStore.client.status, 'ready')

  const client = new Redis(redis.url, { enableOfflineQueue: false, commandTimeout: 300, lazyConnect: true })
  t.teardown(() => { client.disconnect() })
  const passed = await setup(t, payments({ rateLimit: { max: 5, timeWindow: 60_000 }, redis: client }))
  t.equal((passed.gw.plugins.Payments.rateLimitStore as RedisCounterStore).client, client)
  t.equal((await call(passed.gw, '/pay/', 'acme')).headers['x-ratelimit-remaining'], '4')
  t.equal(await client.get('faultline:rl:Payments:c:acme'), '1')

  await owned.gw.app.close()
  t.equal(ownedStore.client.status, 'end', 'our client is closed')
  await passed.gw.app.close()
  t.equal(client.status, 'ready', 'the caller’s client is still open')
})

t.test('rate limit and quota of one request: one Redis command, and each response carries its own counts', async (t) => {
  const redis = await redisServer(t)
  const client = new Redis(redis.url, { enableOfflineQueue: false, commandTimeout: 500, lazyConnect: true })
  t.teardown(() => { client.disconnect() })
  const sent: string[] = []
  const sendCommand = client.sendCommand.bind(client)
  client.sendCommand = (command, stream) => {
    sent.push(command.name)
    return sendCommand(command, stream)
  }
  const { gw, up } = await setup(t, payments({ rateLimit: { max: 30, timeWindow: 60_000 }, quota: { max: 15, period: 'day' }, redis: client }))
  sent.length = 0

  // 20 at once for one consumer: the rate limit admits all, the quota 15 (QEX 403 for the rest).
  const answers = await Promise.all(Array.from({ length: 20 }, async () => await httpRequest(gw.url, { path: '/pay/', headers: { 'x-api-key': 'sk_acme' } })))
  t.same(answers.map((a) => a.status).sort(), [...Array(15).fill(200), ...Array(5).fill(403)])
  t.equal(up.hits, 15)
  // Both counters move together in one script, so in each response they name the same request.
  const counted = answers.map((a) => [30 - Number(a.headers['x-ratelimit-remaining']), 15 - Number(a.headers['x-quota-remaining'])])
  for (const [rate, quotaCount] of counted.filter(([rate]) => rate <= 15)) t.equal(rate, quotaCount, `request ${rate}: its own quota count`)
  t.same(counted.filter((_, i) => answers[i].status === 200).map(([rate]) => rate).sort((a, b) => a - b), Array.from({ length: 15 }, (_, i) => i + 1))
  t.equal(sent.filter((name) => name === 'evalsha' || name === 'eval').length, sent.length, `only scripts: ${sent.join(',')}`)
  t.equal(sent.filter((name) => name === 'evalsha').length, 20, 'one round trip per request, not two')

  // Refused by the rate limit: one command, and the quota is not counted.
  const limited = await setup(t, [{ name: 'Limited', prefix: '/lim', quota: { rateLimit: { max: 1, timeWindow: 60_000 }, quota: { max: 5, period: 'day' }, redis: client } }])
  t.equal((await call(limited.gw, '/lim/', 'acme')).status, 200)
  sent.length = 0
  const refused = await call(limited.gw, '/lim/', 'acme')
  t.match(refused.line, { status: 429, response_flag: 'RLT' })
  t.equal(sent.length, 1)
  const keys = (await client.keys('faultline:*:Limited:*')).sort()
  t.equal(keys.length, 2)
  t.same(await Promise.all(keys.map(async (key) => await client.get(key))), ['1', '2'], 'quota 1 (the refused request not counted), rate limit 2')
})

t.test('counts made in one turn of the event loop go to Redis in one write, each with its own answer', async (t) => {
  const redis = await redisServer(t)
  const client = new Redis(redis.url, { enableOfflineQueue: false, commandTimeout: 500, lazyConnect: true })
  t.teardown(() => { client.disconnect() })
  const first = new RedisCounterStore({ client, owned: false, target: `127.0.0.1:${redis.port}` })
  const second = new RedisCounterStore({ client, owned: false, target: `127.0.0.1:${redis.port}` })
  await first.connect()
  // One write is one call of the socket's _write (a single chunk) or _writev (several).
  const writes: number[] = []
  const stream = client.stream as unknown as { _write: (...args: unknown[]) => void, _writev: (chunks: unknown[], cb: unknown) => void }
  const write = stream._write.bind(stream)
  const writev = stream._writev.bind(stream)
  stream._write = (...args) => { writes.push(1); write(...args) }
  stream._writev = (chunks, cb) => { writes.push(chunks.length); writev(chunks, cb) }

  const counts = await Promise.all([
    ...Array.from({ length: 8 }, async () => await first.incr('gather:a', 60_000)),
    second.incrPair('gather:b', 60_000, 10, 'gather:c', 60_000)
  ])
  t.same(writes, [9], 'nine commands from two stores of one client, one write')
  t.same(counts.slice(0, 8).map((c) => (c as { current: number }).current).sort((a, b) => a - b), [1, 2, 3, 4, 5, 6, 7, 8])
  t.match(counts[8], { first: { current: 1 }, second: { current: 1 } })

  writes.length = 0
  t.equal((await first.incr('gather:a', 60_000)).current, 9, 'a count in a later turn goes out on its own')
  t.equal((await second.incr('gather:a', 60_000)).current, 10)
  t.same(writes, [1, 1])
  t.equal(client.stream.writableCorked, 0, 'nothing is left corked')
})

t.test('a client without a socket of its own (as a Cluster) still counts: nothing is corked', async (t) => {
  const calls: unknown[][] = []
  const client = {
    status: 'ready',
    defineCommand () {},
    on () {},
    async faultlineIncr (...args: unknown[]) {
      calls.push(args)
      return [3, 1000]
    }
  }
  const store = new RedisCounterStore({ client: client as never, owned: false, target: 'cluster:6379' })
  t.same(await store.incr('k', 60_000), { current: 3, ttl: 1000 })
  t.same(calls, [['k', 60_000]])
})

t.test('a passed-in client that could make requests wait is refused at registration', async (t) => {
  const queued = new Redis({ lazyConnect: true, commandTimeout: 300 })
  const untimed = new Redis({ lazyConnect: true, enableOfflineQueue: false })
  t.teardown(() => {
    queued.disconnect()
    untimed.disconnect()
  })
  for (const [client, message] of [[queued, /enableOfflineQueue: false/], [untimed, /commandTimeout/]] as const) {
    const app = Fastify()
    await app.register(core)
    await t.rejects(async () => { await app.register(quota, { rateLimit: { max: 1, timeWindow: 1000 }, redis: client }) }, message)
    await app.close()
  }
})
