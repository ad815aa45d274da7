import t from 'tap'
import Fastify from 'fastify'
import rateLimit from '@fastify/rate-limit'
import core from '@faultline/core'
import quota, { parseDuration, validateOptions, type FaultlineQuotaOptions } from '@faultline/quota'

t.test('defaults', async (t) => {
  const settings = validateOptions({ rateLimit: { max: 10, timeWindow: '1 minute' }, quota: { max: 5, period: 'week' } })
  t.same(settings.rateLimit, { max: 10, timeWindow: 60_000, key: 'consumer' })
  t.same(settings.quota, { max: 5, period: 'week', key: 'consumer' })
  t.equal(settings.redis, undefined)
  t.equal(settings.failMode, 'open')
  t.equal(settings.cacheMax, 10_000)
  t.equal(settings.keyPrefix, 'faultline:')
  t.equal(settings.clock, Date.now)
  t.ok(Object.isFrozen(settings))
  t.same(validateOptions({ redis: { url: 'redis://cache.internal/2' } }).redis,
    { kind: 'url', url: 'redis://cache.internal/2', commandTimeout: 500, connectTimeout: 1000, target: 'cache.internal:6379' })
  t.equal((validateOptions({ redis: { url: 'rediss://u:p@[::1]:6380' } }).redis as { target: string }).target, '[::1]:6380')
})

t.test('the user options are not modified', async (t) => {
  const options: FaultlineQuotaOptions = { rateLimit: { max: 1, timeWindow: '1 second' } }
  const copy = JSON.parse(JSON.stringify(options))
  validateOptions(options)
  t.same(options, copy)
})

t.test('timeWindow: milliseconds or a duration string', async (t) => {
  const cases: Array<[number | string, number]> = [
    [1500, 1500], ['1 minute', 60_000], ['30s', 30_000], ['2 hours', 7_200_000], ['1.5 h', 5_400_000],
    ['250 ms', 250], ['1 day', 86_400_000], ['10 Seconds', 10_000], [' 5 min ', 300_000]
  ]
  for (const [input, ms] of cases) t.equal(parseDuration(input), ms, JSON.stringify(input))
  t.equal(parseDuration('soon'), undefined)
  t.equal(parseDuration('5 fortnights'), undefined)
})

t.test('every bad option is refused with a message naming it and the bad value', async (t) => {
  const bad: Array<[unknown, RegExp]> = [
    [null, /option "options" must be an object, got null/],
    [{ rateLimits: {} }, /unknown option "options\.rateLimits"/],
    [{ rateLimit: 100 }, /option "rateLimit" must be \{ max, timeWindow, key\? \}, got 100/],
    [{ rateLimit: { max: 0, timeWindow: 1000 } }, /option "rateLimit\.max" must be an integer >= 1, got 0/],
    [{ rateLimit: { max: 1.5, timeWindow: 1000 } }, /option "rateLimit\.max" must be an integer >= 1, got 1\.5/],
    [{ rateLimit: { max: '10', timeWindow: 1000 } }, /option "rateLimit\.max" must be an integer >= 1, got "10"/],
    [{ rateLimit: { max: 10 } }, /option "rateLimit\.timeWindow" must be a number of milliseconds >= 1 or a duration such as '1 minute'.*, got undefined/],
    [{ rateLimit: { max: 10, timeWindow: '1 fortnight' } }, /option "rateLimit\.timeWindow" must be .*, got "1 fortnight"/],
    [{ rateLimit: { max: 10, timeWindow: 0 } }, /option "rateLimit\.timeWindow" must be .*, got 0/],
    [{ rateLimit: { max: 10, timeWindow: 1000, key: 'header' } }, /option "rateLimit\.key" must be 'consumer' or 'ip', got "header"/],
    [{ rateLimit: { max: 10, timeWindow: 1000, burst: 5 } }, /unknown option "rateLimit\.burst"/],
    [{ quota: { max: 10, period: 'year' } }, /option "quota\.period" must be 'day', 'week' or 'month', got "year"/],
    [{ quota: { max: -1, period: 'day' } }, /option "quota\.max" must be an integer >= 1, got -1/],
    [{ quota: { max: 10, period: 'day', key: 'ip' } }, /option "quota\.key" must be 'consumer', got "ip"/],
    [{ failMode: 'half-open' }, /option "failMode" must be 'open' or 'closed', got "half-open"/],
    [{ cache: { max: 0 } }, /option "cache\.max" must be an integer >= 1, got 0/],
    [{ cache: 100 }, /option "cache" must be \{ max \}, got 100/],
    [{ keyPrefix: 7 }, /option "keyPrefix" must be a string, got 7/],
    [{ clock: 1234 }, /option "clock" must be a function returning epoch milliseconds, got 1234/],
    [{ redis: 'redis://localhost' }, /option "redis" must be \{ url \} or an ioredis client, got "redis:\/\/localhost"/],
    [{ redis: { url: 'http://localhost:6379' } }, /option "redis\.url" must be a redis:\/\/ or rediss:\/\/ URL, got "http:\/\/localhost:6379"/],
    [{ redis: { url: 'not a url' } }, /option "redis\.url" must be a redis:\/\/ or rediss:\/\/ URL, got "not a url"/],
    [{ redis: { url: 'redis://localhost', commandTimeout: 0 } }, /option "redis\.commandTimeout" must be an integer >= 1, got 0/],
    [{ redis: { url: 'redis://localhost', password: 'x' } }, /unknown option "redis\.password"/]
  ]
  for (const [options, message] of bad) {
    t.throws(() => validateOptions(options as FaultlineQuotaOptions), { name: 'TypeError', message }, JSON.stringify(options))
  }
})

t.test('registration fails with the same messages', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(core)
  await t.rejects(async () => { await app.register(quota, { quota: { max: 10, period: 'fortnight' as 'week' } }) },
    /@faultline\/quota: option "quota\.period" must be 'day', 'week' or 'month', got "fortnight"/)
})

t.test('without rateLimit or quota the plugin adds no hook', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(core)
  await app.register(quota, { redis: { url: 'redis://127.0.0.1:1' } })
  app.get('/', async () => 'ok')
  const res = await app.inject('/')
  t.equal(res.statusCode, 200)
  t.equal(res.headers['x-ratelimit-limit'], undefined)
  t.equal(app.faultlineQuota.rateLimitStore, undefined, 'and opens no Redis connection')
})

t.test('it needs the core, refuses a second registration in one scope, and an @fastify/rate-limit above it', async (t) => {
  const bare = Fastify()
  t.teardown(() => bare.close())
  await t.rejects(async () => { await bare.register(quota, { rateLimit: { max: 1, timeWindow: 1000 } }) }, /@faultline\/core/)

  const twice = Fastify()
  t.teardown(() => twice.close())
  await twice.register(core)
  await twice.register(quota, { rateLimit: { max: 1, timeWindow: 1000 } })
  await t.rejects(async () => { await twice.register(quota, { rateLimit: { max: 1, timeWindow: 1000 } }) }, /registered twice in the same scope/)

  const shadowed = Fastify()
  t.teardown(() => shadowed.close())
  await shadowed.register(core)
  await shadowed.register(rateLimit, { global: false })
  await t.rejects(async () => { await shadowed.register(quota, { rateLimit: { max: 1, timeWindow: 1000 } }) }, /@fastify\/rate-limit is already registered in a parent scope/)
})
