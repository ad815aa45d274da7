/// <reference path="../src/types/opossum.d.ts" />
/**
 * The breaker in a real gateway (core + access log + a scope `{ breaker, proxy }`), against
 * loopback upstreams that count their hits: what opens it, what it answers, what never counts.
 */
import t from 'tap'
import { request } from 'undici'
import {
  abortMidRequest,
  closedPort,
  logged,
  send,
  startBreakerGateway,
  until,
  upstream
} from './fixtures/breaker-gateway.js'

const OPENED = 'faultline: circuit breaker opened'
const REOPENED = 'faultline: circuit breaker re-opened'
const HALF_OPEN = 'faultline: circuit breaker half-open'
const CLOSED = 'faultline: circuit breaker closed'

t.test('a refused port opens the breaker after volumeThreshold failures, then CBO 503 with Retry-After', async (t) => {
  const dead = await closedPort()
  const gw = await startBreakerGateway(t, { targets: [dead.url], breaker: { volumeThreshold: 4, resetTimeout: 2500 } })
  for (let i = 0; i < 4; i++) {
    const res = await send(gw)
    t.equal(res.status, 502)
    t.match(res.line, { response_flag: 'UCF', error_target: dead.address })
    t.notOk('circuit_breaker_state' in res.line)
  }
  t.equal(gw.breaker.state, 'open')

  const res = await send(gw)
  t.equal(res.status, 503)
  t.equal(res.headers['retry-after'], '3', 'whole seconds until the trial (2.5 s, rounded up)')
  const body = JSON.parse(res.body)
  t.same(body, { statusCode: 503, error: 'Service Unavailable', message: 'The upstream service is temporarily unavailable', request_id: res.line.request_id })
  t.match(res.line, {
    status: 503,
    api_name: 'Payments',
    response_source: 'gateway',
    response_flag: 'CBO',
    response_code_details: 'circuit_breaker_open',
    error_category: 'upstream',
    error_source: 'CircuitBreaker',
    error_target: dead.address,
    circuit_breaker_state: 'open'
  })
  t.notOk('upstream_addr' in res.line, 'no upstream was chosen')
  t.notOk('upstream_attempts' in res.line, 'no upstream was tried')

  const opened = logged(gw, OPENED)
  t.equal(opened.length, 1, 'the opening is logged once')
  t.match(opened[0], {
    level: 40,
    api_name: 'Payments',
    circuit_breaker: 'Payments',
    circuit_breaker_state: 'open',
    error_target: dead.address,
    failure_rate: 100,
    failures: 4,
    requests: 4,
    last_flags: { UCF: 4 }
  })
  t.match(opened[0].reason, /^100% of 4 upstream requests failed within 10000 ms \(threshold 50%\), last: UCF connection_refused at 127\.0\.0\.1:\d+$/)
})

t.test('an open breaker answers CBO without touching the upstream', async (t) => {
  const up = await upstream(t, 503)
  const gw = await startBreakerGateway(t, { targets: [up.url], breaker: { volumeThreshold: 3, resetTimeout: 60000 } })
  for (let i = 0; i < 3; i++) {
    const res = await send(gw)
    t.equal(res.status, 503)
    t.match(res.line, { response_flag: 'URS', response_source: 'upstream', upstream_status: 503 })
  }
  t.equal(up.hits, 3)
  for (let i = 0; i < 5; i++) {
    const res = await send(gw)
    t.equal(res.status, 503)
    t.equal(res.headers['retry-after'], '60')
    t.match(res.line, { response_flag: 'CBO', circuit_breaker_state: 'open', error_target: up.address })
  }
  t.equal(up.hits, 3, 'the upstream received nothing while the breaker was open')
  t.equal(logged(gw, OPENED).length, 1, 'logged once, not per rejected request')
})

t.test('CBO keeps a keep-alive connection open (rejected clients do not have to reconnect)', async (t) => {
  const up = await upstream(t, 503)
  const gw = await startBreakerGateway(t, { targets: [up.url], breaker: { volumeThreshold: 1, resetTimeout: 60000 } })
  await send(gw)
  const res = await request(`${gw.url}/api/items`)
  await res.body.dump()
  t.equal(res.statusCode, 503)
  t.equal(res.headers.connection, 'keep-alive')
  t.equal(res.headers['retry-after'], '60')
})

t.test('after resetTimeout, a successful trial closes the breaker and clears the window', async (t) => {
  const up = await upstream(t, 503)
  const gw = await startBreakerGateway(t, { targets: [up.url], breaker: { volumeThreshold: 2, resetTimeout: 200 } })
  await send(gw)
  await send(gw)
  t.equal(gw.breaker.state, 'open')
  up.status = 200
  await until(() => gw.breaker.state === 'half_open', 'half-open')

  const trial = await send(gw)
  t.equal(trial.status, 200)
  t.equal(up.hits, 3, 'the trial reached the upstream')
  t.equal(gw.breaker.state, 'closed')
  t.same(gw.breaker.stats(), { requests: 0, failures: 0, successes: 0 }, 'failures from before the outage are gone')

  const after = await send(gw)
  t.equal(after.status, 200)
  t.same(gw.breaker.stats(), { requests: 1, failures: 0, successes: 1 })

  t.equal(logged(gw, OPENED).length, 1)
  t.equal(logged(gw, HALF_OPEN).length, 1)
  const closed = logged(gw, CLOSED)
  t.equal(closed.length, 1)
  t.match(logged(gw, HALF_OPEN)[0], { level: 30, api_name: 'Payments', circuit_breaker_state: 'half_open', reason: 'open for 200 ms: the next request is the trial' })
  t.match(closed[0], { level: 30, api_name: 'Payments', circuit_breaker_state: 'closed', reason: `half-open trial succeeded: the upstream answered (200 from ${up.address})` })
  const order = gw.appLog.map((l) => l.msg).filter((m) => typeof m === 'string' && m.startsWith('faultline: circuit breaker'))
  t.same(order, [OPENED, HALF_OPEN, CLOSED])
})

t.test('a failed trial re-opens the breaker for another resetTimeout', async (t) => {
  const up = await upstream(t, 503)
  const gw = await startBreakerGateway(t, { targets: [up.url], breaker: { volumeThreshold: 2, resetTimeout: 200 } })
  await send(gw)
  await send(gw)
  await until(() => gw.breaker.state === 'half_open', 'half-open')

  const trial = await send(gw)
  t.equal(trial.status, 503)
  t.match(trial.line, { response_flag: 'URS' })
  t.equal(gw.breaker.state, 'open')
  const next = await send(gw)
  t.match(next.line, { response_flag: 'CBO', circuit_breaker_state: 'open' })
  t.equal(up.hits, 3)

  const reopened = logged(gw, REOPENED)
  t.equal(reopened.length, 1)
  t.match(reopened[0], { level: 40, api_name: 'Payments', circuit_breaker_state: 'open', last_flag: 'URS', reason: `half-open trial failed: URS upstream_response_status at ${up.address}` })

  up.status = 200
  await until(() => gw.breaker.state === 'half_open', 'half-open again')
  t.equal((await send(gw)).status, 200)
  t.equal(gw.breaker.state, 'closed')
  t.equal(logged(gw, OPENED).length, 1)
  t.equal(logged(gw, HALF_OPEN).length, 2)
  t.equal(logged(gw, CLOSED).length, 1)
})

t.test('while the trial is in flight, other requests get CBO half_open and only the trial reaches the upstream', async (t) => {
  const up = await upstream(t, 503)
  const gw = await startBreakerGateway(t, { targets: [up.url], breaker: { volumeThreshold: 2, resetTimeout: 200 } })
  await send(gw)
  await send(gw)
  await until(() => gw.breaker.state === 'half_open', 'half-open')
  up.status = 200
  up.hold = true

  const trial = send(gw)
  await until(() => up.hits === 3, 'the trial to reach the upstream')
  const others = await Promise.all([send(gw), send(gw), send(gw)])
  for (const res of others) {
    t.equal(res.status, 503)
    t.equal(res.headers['retry-after'], '1')
    t.match(res.line, { response_flag: 'CBO', error_source: 'CircuitBreaker', circuit_breaker_state: 'half_open', error_target: up.address })
  }
  t.equal(up.hits, 3, 'only the trial went through')

  up.hold = false
  up.release()
  t.equal((await trial).status, 200)
  t.equal(gw.breaker.state, 'closed')
  t.equal((await send(gw)).status, 200)
})

t.test('upstream 4xx answers never open the breaker', async (t) => {
  const up = await upstream(t, 404)
  const gw = await startBreakerGateway(t, { targets: [up.url], breaker: { volumeThreshold: 2 } })
  for (const status of [404, 400, 401, 403, 409, 429, 404, 400, 429, 404]) {
    up.status = status
    const res = await send(gw)
    t.equal(res.status, status)
    t.notOk('response_flag' in res.line)
  }
  t.equal(gw.breaker.state, 'closed')
  t.same(gw.breaker.stats(), { requests: 10, failures: 0, successes: 10 }, 'the upstream answered: successes')
  t.equal(logged(gw, OPENED).length, 0)
})

t.test('client aborts (CDC) never count, neither as failures nor towards volumeThreshold', async (t) => {
  const up = await upstream(t, 503)
  const gw = await startBreakerGateway(t, { targets: [up.url], breaker: { volumeThreshold: 4 } })
  for (let i = 0; i < 3; i++) t.match((await send(gw)).line, { response_flag: 'URS' })
  up.hold = true
  for (let i = 0; i < 5; i++) {
    const line = await abortMidRequest(gw, up)
    t.match(line, { status: 499, response_flag: 'CDC', error_category: 'client' })
  }
  t.equal(gw.breaker.state, 'closed', 'five aborts did not open it')
  t.same(gw.breaker.stats(), { requests: 3, failures: 3, successes: 0 }, 'aborts are not in the window')
  await until(() => gw.breaker.inFlight === 0, 'aborted requests to finish')

  up.hold = false
  t.match((await send(gw)).line, { response_flag: 'URS' })
  t.equal(gw.breaker.state, 'open', 'the fourth real failure opens it')
  t.match(logged(gw, OPENED)[0], { failures: 4, requests: 4, last_flags: { URS: 4 } })
})

t.test('an aborted trial is inconclusive: the breaker stays half-open and the next request is the trial', async (t) => {
  const up = await upstream(t, 503)
  const gw = await startBreakerGateway(t, { targets: [up.url], breaker: { volumeThreshold: 2, resetTimeout: 200 } })
  await send(gw)
  await send(gw)
  await until(() => gw.breaker.state === 'half_open', 'half-open')
  up.status = 200
  up.hold = true

  const line = await abortMidRequest(gw, up)
  t.match(line, { status: 499, response_flag: 'CDC' })
  t.equal(gw.breaker.state, 'half_open', 'neither closed nor re-opened')
  t.equal(logged(gw, CLOSED).length, 0)
  t.equal(logged(gw, REOPENED).length, 0)

  up.hold = false
  const next = await send(gw)
  t.equal(next.status, 200, 'the next request was let through at once as the new trial')
  t.equal(gw.breaker.state, 'closed')
  t.equal(logged(gw, HALF_OPEN).length, 1)
  t.equal(logged(gw, CLOSED).length, 1)
})

t.test('in half-open only the trial decides: a request admitted before the breaker opened does not', async (t) => {
  const up = await upstream(t, 200)
  const gw = await startBreakerGateway(t, { targets: [up.url], breaker: { volumeThreshold: 2, resetTimeout: 200 } })
  up.hold = true
  const early = send(gw)
  await until(() => up.hits === 1, 'the early request to reach the upstream')
  up.hold = false
  up.status = 503
  await send(gw)
  await send(gw)
  t.equal(gw.breaker.state, 'open')
  await until(() => gw.breaker.state === 'half_open', 'half-open')

  up.status = 200
  up.release()
  t.equal((await early).status, 200)
  t.equal(gw.breaker.state, 'half_open', 'its success, admitted while closed, did not close the breaker')
  t.equal(gw.breaker.inFlight, 0, 'but its capacity was given back')
  t.equal((await send(gw)).status, 200, 'the next request is the trial')
  t.equal(gw.breaker.state, 'closed')
})

t.test('capacity: requests beyond it get UOF 503 and are never counted', async (t) => {
  const up = await upstream(t, 200)
  const gw = await startBreakerGateway(t, { targets: [up.url], breaker: { capacity: 2, volumeThreshold: 1 } })
  up.hold = true
  const first = send(gw)
  const second = send(gw)
  await until(() => up.hits === 2, 'two requests in flight')
  t.equal(gw.breaker.inFlight, 2)

  const over = await send(gw)
  t.equal(over.status, 503)
  t.notOk('retry-after' in over.headers)
  t.match(over.line, {
    status: 503,
    response_flag: 'UOF',
    response_code_details: 'upstream_overflow',
    error_category: 'upstream',
    error_source: 'UpstreamProxy',
    error_target: up.address
  })
  t.equal(up.hits, 2, 'the overflow did not reach the upstream')

  up.hold = false
  up.release()
  t.equal((await first).status, 200)
  t.equal((await second).status, 200)
  t.equal((await send(gw)).status, 200, 'capacity is given back when requests finish')
  t.equal(gw.breaker.inFlight, 0)
  t.equal(gw.breaker.state, 'closed')
  t.same(gw.breaker.stats(), { requests: 3, failures: 0, successes: 3 })
})

t.test('auth rejections after the breaker never count', async (t) => {
  const up = await upstream(t, 200)
  const gw = await startBreakerGateway(t, {
    targets: [up.url],
    breaker: { volumeThreshold: 1, errorThresholdPercentage: 0 },
    auth: { type: 'apiKey', keys: [{ id: 'shop', key: 'k-123' }] }
  })
  for (let i = 0; i < 5; i++) t.match((await send(gw)).line, { status: 401, response_flag: 'AMF' })
  t.match((await send(gw, undefined, { 'x-api-key': 'wrong' })).line, { status: 401, response_flag: 'AKI' })
  t.equal(gw.breaker.state, 'closed')
  t.same(gw.breaker.stats(), { requests: 0, failures: 0, successes: 0 })
  t.equal(gw.breaker.inFlight, 0)
  t.equal((await send(gw, undefined, { 'x-api-key': 'k-123' })).status, 200)
  t.equal(up.hits, 1)
})

t.test('several targets: the health marking takes a dead target out, the breaker stays closed', async (t) => {
  const dead = await closedPort()
  const live = await upstream(t, 200)
  // Without the refusal backoff, which would pass over the dead target before any ejection.
  const gw = await startBreakerGateway(t, { targets: [dead.url, live.url], upstream: { refusedBackoff: 0 }, breaker: { volumeThreshold: 4 } })
  const flags: unknown[] = []
  for (let i = 0; i < 10; i++) flags.push((await send(gw)).line.response_flag)
  t.same(flags.filter((f) => f === 'UCF').length, 2, 'two failures on the dead target, then it is ejected')
  t.equal(gw.breaker.state, 'closed')
  t.same(gw.breaker.stats(), { requests: 10, failures: 2, successes: 8 })
  t.equal(gw.breaker.targets, `${dead.address},${live.address}`)
})

t.test('several targets failing: the breaker opens and CBO names every target', async (t) => {
  const a = await upstream(t, 500)
  const b = await upstream(t, 502)
  const gw = await startBreakerGateway(t, { targets: [a.url, b.url + '/base'], breaker: { volumeThreshold: 4, resetTimeout: 60000 } })
  for (let i = 0; i < 4; i++) t.match((await send(gw)).line, { response_flag: 'URS' })
  const res = await send(gw)
  t.match(res.line, { response_flag: 'CBO', error_target: `${a.address},${b.address}` })
  t.match(logged(gw, OPENED)[0], { last_flags: { URS: 4 }, error_target: `${a.address},${b.address}` })
})

t.test('the name option names the breaker in its log lines; api_name stays the API', async (t) => {
  const up = await upstream(t, 503)
  const gw = await startBreakerGateway(t, { targets: [up.url], breaker: { name: 'payments-upstream', volumeThreshold: 1 } })
  await send(gw)
  t.equal(gw.breaker.name, 'payments-upstream')
  t.match(logged(gw, OPENED)[0], { api_name: 'Payments', circuit_breaker: 'payments-upstream' })
})

t.test('successes in a closed breaker are counted without a call through opossum; failures still weigh them', async (t) => {
  const { default: CircuitBreaker } = await import('opossum')
  const fire = CircuitBreaker.prototype.fire
  let fired = 0
  CircuitBreaker.prototype.fire = function (this: InstanceType<typeof CircuitBreaker>, ...args: unknown[]) {
    fired++
    return fire.apply(this, args)
  }
  t.teardown(() => { CircuitBreaker.prototype.fire = fire })
  const up = await upstream(t, 200)
  const gw = await startBreakerGateway(t, { targets: [up.url], breaker: { volumeThreshold: 4, errorThresholdPercentage: 50, resetTimeout: 60000 } })
  for (let i = 0; i < 6; i++) t.equal((await send(gw)).status, 200)
  t.same(gw.breaker.stats(), { requests: 6, failures: 0, successes: 6 }, 'six successes in the window')
  t.equal(fired, 0, 'none went through opossum\'s fire')

  up.status = 500
  for (let i = 0; i < 6; i++) t.match((await send(gw)).line, { response_flag: 'URS' })
  t.equal(fired, 6, 'each failure does (it may open the breaker)')
  t.equal(gw.breaker.state, 'closed', '6 failures of 12 requests: 50%, not over it')
  t.match((await send(gw)).line, { response_flag: 'URS' })
  t.equal(gw.breaker.state, 'open', 'the seventh failure takes it over 50% (7 of 13)')
  t.match((await send(gw)).line, { response_flag: 'CBO' })
})
