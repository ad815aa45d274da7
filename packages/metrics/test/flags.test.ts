/**
 * Real failing requests through a real gateway: the counters say, per flag, exactly what was sent,
 * the same as the access log; the gauges follow the breaker and the balancer.
 */
import t from 'tap'
import { startFaultLab, createPki } from '@faultline/fault-lab'
import { closedPort, startMetricsGateway, until, upstream } from './fixtures/metrics-gateway.js'
import { sumBy, total } from './fixtures/exposition.js'

const REQUESTS = 'faultline_requests_total'

t.test('counts by response_flag equal the failing requests sent, and the access log agrees', async (t) => {
  const lab = await startFaultLab()
  t.teardown(() => lab.close())
  const ca = createPki().rootCa.cert
  const refused = await closedPort()
  const store = await closedPort()
  const ok = await upstream(t)
  const gw = await startMetricsGateway(t, [
    { prefix: '/expired', proxy: { name: 'Expired', upstream: { targets: [lab.urls.tlsExpired], tls: { ca } } } },
    { prefix: '/self-signed', proxy: { name: 'SelfSigned', upstream: { targets: [lab.urls.tlsSelfSigned], tls: { ca } } } },
    { prefix: '/refused', breaker: { volumeThreshold: 4, resetTimeout: 60_000 }, proxy: { name: 'Refused', upstream: { targets: [refused.url], refusedBackoff: 0 } } },
    { prefix: '/status', proxy: { name: 'Status', upstream: { targets: [lab.urls.ok] } } },
    { prefix: '/ok', proxy: { name: 'Ok', methods: ['GET'], upstream: { targets: [ok.url] } } },
    { prefix: '/closed', quota: { rateLimit: { max: 100, timeWindow: 60_000 }, redis: { url: `redis://127.0.0.1:${store.port}`, connectTimeout: 200, commandTimeout: 200 }, failMode: 'closed' }, proxy: { name: 'FailClosed', upstream: { targets: [ok.url] } } },
    { prefix: '/open', quota: { rateLimit: { max: 100, timeWindow: 60_000 }, redis: { url: `redis://127.0.0.1:${store.port}`, connectTimeout: 200, commandTimeout: 200 }, failMode: 'open' }, proxy: { name: 'FailOpen', upstream: { targets: [ok.url] } } }
  ])

  const sent: Record<string, number> = {}
  async function send (path: string, expected: string, times: number, method = 'GET'): Promise<void> {
    for (let i = 0; i < times; i++) {
      await gw.send(`${path}?i=${i}`, { method })
      sent[expected] = (sent[expected] ?? 0) + 1
    }
  }
  await send('/expired', 'TLE', 3)
  await send('/self-signed', 'TLN', 2)
  await send('/refused', 'UCF', 4) // opens the breaker (volumeThreshold 4)
  await send('/refused', 'CBO', 2)
  await send('/status/status/503', 'URS', 2)
  await send('/ok', '', 5)
  await send('/ok', 'MNA', 1, 'DELETE')
  await send('/no-such-api', 'NRF', 3)
  await send('/closed', 'RLE', 2)
  await send('/open', '', 3) // fail-open: through, unflagged, degraded

  await gw.log.waitFor(27)
  const samples = await gw.scrape()
  t.same(sumBy(samples, REQUESTS, 'response_flag'), sent, 'one count per request, under its flag')

  const logged: Record<string, number> = {}
  for (const line of gw.log.lines) {
    const flag = (line.response_flag as string | undefined) ?? ''
    logged[flag] = (logged[flag] ?? 0) + 1
  }
  t.same(sumBy(samples, REQUESTS, 'response_flag'), logged, 'the same counts as the access log')

  // The other labels come from the flag catalogue and the record.
  t.equal(total(samples, REQUESTS, { api: 'Expired', method: 'GET', status_class: '5xx', response_flag: 'TLE', error_category: 'upstream', error_source: 'UpstreamProxy', response_source: 'gateway' }), 3)
  t.equal(total(samples, REQUESTS, { api: 'Refused', response_flag: 'CBO', status_class: '5xx', error_source: 'CircuitBreaker' }), 2)
  t.equal(total(samples, REQUESTS, { api: 'Status', response_flag: 'URS', error_source: 'Upstream', response_source: 'upstream' }), 2)
  t.equal(total(samples, REQUESTS, { api: 'Ok', response_flag: '', status_class: '2xx', response_source: 'upstream', error_category: '' }), 5)
  t.equal(total(samples, REQUESTS, { api: 'Ok', method: 'DELETE', response_flag: 'MNA', status_class: '4xx', error_category: 'client', error_source: 'Router' }), 1)
  t.equal(total(samples, REQUESTS, { api: '', response_flag: 'NRF', status_class: '4xx' }), 3, 'no API: api=""')
  t.equal(total(samples, REQUESTS, { api: 'FailClosed', response_flag: 'RLE', error_category: 'rate_limit', error_source: 'RateLimit', status_class: '5xx' }), 2)

  t.same(sumBy(samples, 'faultline_rate_limit_degraded_total', 'api'), { FailOpen: 3 }, 'fail-open requests are counted as degraded')
  t.equal(total(samples, 'faultline_circuit_breaker_state', { api: 'Refused', state: 'open' }), 1)
  t.equal(total(samples, 'faultline_circuit_breaker_state', { api: 'Refused', state: 'closed' }), 0)
  t.same(sumBy(samples, 'faultline_upstream_requests_total', 'response_flag', { api: 'Refused', target: refused.address }), { UCF: 4 }, 'CBO never reached the target')

  // Every record is timed once: histogram counts equal the requests of each API.
  const perApi = sumBy(samples, REQUESTS, 'api')
  t.same(sumBy(samples, 'faultline_request_duration_seconds_count', 'api'), perApi)
  t.same(sumBy(samples, 'faultline_gateway_duration_seconds_count', 'api'), perApi)
  t.same(sumBy(samples, 'faultline_upstream_duration_seconds_count', 'api'), { Expired: 3, SelfSigned: 2, Refused: 4, Status: 2, Ok: 5, FailOpen: 3 }, 'upstream time only where an upstream was tried')
  t.equal(total(samples, 'faultline_upstream_duration_seconds_bucket', { api: 'Ok', le: '+Inf' }), 5)
})

t.test('refusals answered during refusedBackoff count against their target, without upstream time', async (t) => {
  const refused = await closedPort()
  const gw = await startMetricsGateway(t, [
    { prefix: '/held', proxy: { name: 'Held', upstream: { targets: [refused.url], refusedBackoff: 60_000 } } }
  ])
  for (let i = 0; i < 3; i++) await gw.send('/held/x')
  await gw.log.waitFor(3)
  const samples = await gw.scrape()
  t.same(sumBy(samples, REQUESTS, 'response_flag', { api: 'Held' }), { UCF: 3 })
  t.same(sumBy(samples, 'faultline_upstream_requests_total', 'response_flag', { api: 'Held', target: refused.address }), { UCF: 3 }, 'the target that fails')
  t.equal(total(samples, 'faultline_upstream_duration_seconds_count', { api: 'Held' }), 1, 'dialled once')
  t.equal(total(samples, 'faultline_request_duration_seconds_count', { api: 'Held' }), 3)
})

t.test('breaker state and healthy targets are read at scrape time', async (t) => {
  const dead = await closedPort()
  const ok = await upstream(t)
  const gw = await startMetricsGateway(t, [
    { prefix: '/pair', proxy: { name: 'Pair', upstream: { targets: [ok.url, dead.url], healthCheck: undefined, refusedBackoff: 0 } } },
    { prefix: '/probed', proxy: { name: 'Probed', upstream: { targets: [dead.url], healthCheck: { path: '/health', interval: 100, timeout: 200, unhealthyThreshold: 1 } } } },
    { prefix: '/guarded', breaker: { volumeThreshold: 2, resetTimeout: 200 }, proxy: { name: 'Guarded', upstream: { targets: [dead.url], refusedBackoff: 0 } } }
  ])
  let samples = await gw.scrape()
  t.equal(total(samples, 'faultline_upstream_targets', { api: 'Pair' }), 2)
  t.equal(total(samples, 'faultline_upstream_targets_healthy', { api: 'Pair' }), 2, 'both healthy before any traffic')
  t.equal(total(samples, 'faultline_circuit_breaker_state', { api: 'Guarded', state: 'closed' }), 1)
  t.notOk(samples.some((s) => s.name === 'faultline_circuit_breaker_state' && s.labels.api === 'Pair'), 'no breaker, no breaker series')

  // Round robin: the dead target fails twice (unhealthyThreshold 2) and is taken out.
  for (let i = 0; i < 4; i++) await gw.send('/pair/x')
  samples = await gw.scrape()
  t.equal(total(samples, 'faultline_upstream_targets_healthy', { api: 'Pair' }), 1)
  t.equal(total(samples, 'faultline_upstream_target_healthy', { api: 'Pair', target: dead.address }), 0)
  t.equal(total(samples, 'faultline_upstream_target_healthy', { api: 'Pair', target: ok.address }), 1)

  // Active checks mark the only target down: NHU.
  await until(async () => total(await gw.scrape(), 'faultline_upstream_targets_healthy', { api: 'Probed' }) === 0, 'the probe to mark the target down')
  const nhu = await gw.send('/probed/x')
  t.equal(nhu.status, 503)
  samples = await gw.scrape()
  t.equal(total(samples, REQUESTS, { api: 'Probed', response_flag: 'NHU', error_source: 'LoadBalancer' }), 1)

  // The breaker opens, then goes half-open after resetTimeout.
  await gw.send('/guarded/x')
  await gw.send('/guarded/x')
  samples = await gw.scrape()
  t.same(sumBy(samples, 'faultline_circuit_breaker_state', 'state', { api: 'Guarded' }), { closed: 0, open: 1, half_open: 0 })
  await until(async () => total(await gw.scrape(), 'faultline_circuit_breaker_state', { api: 'Guarded', state: 'half_open' }) === 1, 'half-open')
})
