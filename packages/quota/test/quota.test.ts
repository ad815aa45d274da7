import t, { type Test } from 'tap'
import { periodAt } from '@faultline/quota'
import { call, startQuotaGateway, startUpstream, TestClock, type Call, type QuotaGateway, type Upstream } from './fixtures/quota-gateway.js'
import type { FaultlineQuotaOptions } from '@faultline/quota'

async function setup (t: Test, options: FaultlineQuotaOptions): Promise<{ gw: QuotaGateway, up: Upstream }> {
  const up = await startUpstream()
  const gw = await startQuotaGateway(up.url, [{ name: 'Payments', prefix: '/pay', quota: options }])
  t.teardown(async () => {
    await gw.app.close()
    await up.close()
  })
  return { gw, up }
}

function assertQex (t: Test, res: Call, consumer: string, limit: number, reset: string): void {
  t.equal(res.status, 403)
  t.equal(res.headers['x-quota-limit'], String(limit))
  t.equal(res.headers['x-quota-remaining'], '0')
  t.equal(res.headers['x-quota-reset'], reset)
  t.equal(res.headers['retry-after'], undefined, 'QEX is a 403: no Retry-After')
  t.same(JSON.parse(res.body), { statusCode: 403, error: 'Forbidden', message: 'Quota exceeded', request_id: res.line.request_id })
  t.match(res.line, {
    status: 403,
    response_flag: 'QEX',
    response_code_details: 'quota_exceeded',
    error_category: 'rate_limit',
    error_source: 'Quota',
    consumer,
    api_name: 'Payments',
    response_source: 'gateway'
  })
  t.equal(res.line.error_target, undefined)
}

t.test('max requests pass with x-quota-* headers; request max+1 is QEX 403', async (t) => {
  const clock = new TestClock('2026-03-10T12:00:00.000Z')
  const { gw, up } = await setup(t, { quota: { max: 3, period: 'day' }, clock: clock.read })
  for (let i = 1; i <= 3; i++) {
    const res = await call(gw, '/pay/', 'acme')
    t.equal(res.status, 200)
    t.equal(res.headers['x-quota-limit'], '3')
    t.equal(res.headers['x-quota-remaining'], String(3 - i))
    t.equal(res.headers['x-quota-reset'], String(12 * 3600), 'seconds until midnight UTC')
    t.match(res.line, { status: 200, consumer: 'acme' })
    t.equal(res.line.response_flag, undefined)
  }
  const over = await call(gw, '/pay/', 'acme')
  assertQex(t, over, 'acme', 3, String(12 * 3600))
  t.equal(up.hits, 3)
  const other = await call(gw, '/pay/', 'globex')
  t.equal(other.status, 200, 'quotas are per consumer')
  t.equal(other.headers['x-quota-remaining'], '2')
})

t.test('day: the quota renews at 00:00:00.000 UTC, not before', async (t) => {
  const clock = new TestClock('2026-03-10T23:59:58.500Z')
  const { gw } = await setup(t, { quota: { max: 1, period: 'day' }, clock: clock.read })
  const first = await call(gw, '/pay/', 'acme')
  t.equal(first.status, 200)
  t.equal(first.headers['x-quota-reset'], '2', '1.5 s left, rounded up')
  clock.set('2026-03-10T23:59:59.999Z')
  assertQex(t, await call(gw, '/pay/', 'acme'), 'acme', 1, '1')
  clock.set('2026-03-11T00:00:00.000Z')
  const renewed = await call(gw, '/pay/', 'acme')
  t.equal(renewed.status, 200)
  t.equal(renewed.headers['x-quota-remaining'], '0')
  t.equal(renewed.headers['x-quota-reset'], '86400')
  t.equal(renewed.line.response_flag, undefined)
})

t.test('week: ISO weeks start on Monday 00:00 UTC', async (t) => {
  // 2026-03-09 is a Monday.
  const clock = new TestClock('2026-03-09T00:00:00.000Z')
  const { gw } = await setup(t, { quota: { max: 2, period: 'week' }, clock: clock.read })
  const monday = await call(gw, '/pay/', 'acme')
  t.equal(monday.headers['x-quota-reset'], String(7 * 86400))
  clock.set('2026-03-11T12:00:00.000Z') // Wednesday noon
  const wednesday = await call(gw, '/pay/', 'acme')
  t.equal(wednesday.status, 200)
  t.equal(wednesday.headers['x-quota-remaining'], '0', 'Monday and Wednesday are the same week')
  t.equal(wednesday.headers['x-quota-reset'], String(4.5 * 86400))
  clock.set('2026-03-15T23:59:59.999Z') // Sunday, last millisecond of the week
  assertQex(t, await call(gw, '/pay/', 'acme'), 'acme', 2, '1')
  clock.set('2026-03-16T00:00:00.000Z') // next Monday
  const next = await call(gw, '/pay/', 'acme')
  t.equal(next.status, 200)
  t.equal(next.headers['x-quota-remaining'], '1')
})

t.test('month: calendar months of any length, renewing on the 1st at 00:00 UTC', async (t) => {
  const clock = new TestClock('2028-02-01T00:00:00.000Z') // 2028 is a leap year
  const { gw } = await setup(t, { quota: { max: 1, period: 'month' }, clock: clock.read })
  const first = await call(gw, '/pay/', 'acme')
  t.equal(first.headers['x-quota-reset'], String(29 * 86400), 'February 2028 has 29 days')
  clock.set('2028-02-29T23:59:59.999Z')
  assertQex(t, await call(gw, '/pay/', 'acme'), 'acme', 1, '1')
  clock.set('2028-03-01T00:00:00.000Z')
  const march = await call(gw, '/pay/', 'acme')
  t.equal(march.status, 200)
  t.equal(march.headers['x-quota-reset'], String(31 * 86400))
  clock.set('2028-12-31T23:59:59.000Z')
  const december = await call(gw, '/pay/', 'acme')
  t.equal(december.status, 200, 'a new month')
  t.equal(december.headers['x-quota-reset'], '1', 'December rolls over into January')
})

t.test('a request refused by the rate limit does not consume quota', async (t) => {
  const clock = new TestClock('2026-03-10T12:00:00.000Z')
  const { gw, up } = await setup(t, { rateLimit: { max: 2, timeWindow: '1 minute' }, quota: { max: 3, period: 'day' }, clock: clock.read })
  t.equal((await call(gw, '/pay/', 'acme')).headers['x-quota-remaining'], '2')
  t.equal((await call(gw, '/pay/', 'acme')).headers['x-quota-remaining'], '1')
  for (let i = 0; i < 5; i++) {
    const limited = await call(gw, '/pay/', 'acme')
    t.match(limited.line, { status: 429, response_flag: 'RLT', error_source: 'RateLimit', consumer: 'acme' })
    t.equal(limited.headers['x-quota-remaining'], undefined, 'the quota was not even consulted')
  }
  clock.advance(60_000)
  const third = await call(gw, '/pay/', 'acme')
  t.equal(third.status, 200, 'the five refused requests left the quota untouched')
  t.equal(third.headers['x-quota-remaining'], '0')
  const fourth = await call(gw, '/pay/', 'acme')
  t.equal(fourth.headers['x-ratelimit-remaining'], '0', 'the rate limit let it through')
  assertQex(t, fourth, 'acme', 3, String(12 * 3600 - 60))
  t.equal(up.hits, 3)
})

t.test('periodAt: ids and boundaries', async (t) => {
  const at = (iso: string): number => Date.parse(iso)
  t.same(periodAt('day', at('2026-01-01T00:00:00.000Z')), { id: 'd2026-01-01', start: at('2026-01-01T00:00:00.000Z'), end: at('2026-01-02T00:00:00.000Z') })
  t.same(periodAt('day', at('2025-12-31T23:59:59.999Z')).id, 'd2025-12-31')
  // 2026-01-01 is a Thursday: its ISO week began on Monday 2025-12-29.
  t.same(periodAt('week', at('2026-01-01T10:00:00.000Z')), { id: 'w2025-12-29', start: at('2025-12-29T00:00:00.000Z'), end: at('2026-01-05T00:00:00.000Z') })
  t.equal(periodAt('week', at('2026-01-04T23:59:59.999Z')).id, 'w2025-12-29', 'Sunday closes the week')
  t.equal(periodAt('week', at('2026-01-05T00:00:00.000Z')).id, 'w2026-01-05', 'Monday opens the next')
  t.same(periodAt('month', at('2026-12-15T00:00:00.000Z')), { id: 'm2026-12', start: at('2026-12-01T00:00:00.000Z'), end: at('2027-01-01T00:00:00.000Z') })
})
