/**
 * The same instruments through OpenTelemetry, read back through a real SDK MeterProvider (pull
 * reader): the counts agree with the Prometheus exposition.
 */
import t, { type Test } from 'tap'
import { metrics as otelMetrics } from '@opentelemetry/api'
import { MeterProvider, MetricReader, type MetricData } from '@opentelemetry/sdk-metrics'
import { defaultBuckets, instrumentNames } from '@faultline/metrics'
import { closedPort, startMetricsGateway, upstream } from './fixtures/metrics-gateway.js'
import { sumBy } from './fixtures/exposition.js'

class PullReader extends MetricReader {
  protected override async onForceFlush (): Promise<void> {}
  protected override async onShutdown (): Promise<void> {}
}

function sdk (t: Test): { provider: MeterProvider, collect: () => Promise<Map<string, MetricData>> } {
  const reader = new PullReader()
  const provider = new MeterProvider({ readers: [reader] })
  t.teardown(() => provider.shutdown())
  return {
    provider,
    async collect () {
      const { resourceMetrics } = await reader.collect()
      const out = new Map<string, MetricData>()
      for (const scope of resourceMetrics.scopeMetrics) {
        if (scope.scope.name !== '@faultline/metrics') continue
        for (const metric of scope.metrics) out.set(metric.descriptor.name, metric)
      }
      return out
    }
  }
}

/** `{ [attribute value]: sum of values }` over a metric's data points. */
function byAttribute (metric: MetricData | undefined, attribute: string): Record<string, number> {
  const out: Record<string, number> = {}
  for (const point of metric?.dataPoints ?? []) {
    const key = String(point.attributes[attribute] ?? '')
    const value = typeof point.value === 'number' ? point.value : (point.value as { count: number }).count
    out[key] = (out[key] ?? 0) + value
  }
  return out
}

t.test('counts, histograms and gauges through a MeterProvider match the Prometheus exposition', async (t) => {
  const { provider, collect } = sdk(t)
  const dead = await closedPort()
  const ok = await upstream(t)
  const gw = await startMetricsGateway(t, [
    { prefix: '/dead', breaker: { volumeThreshold: 3, resetTimeout: 60_000 }, proxy: { name: 'Dead', upstream: { targets: [dead.url], refusedBackoff: 0 } } },
    { prefix: '/ok', proxy: { name: 'Ok', upstream: { targets: [ok.url] } } }
  ], { openTelemetry: provider })

  for (let i = 0; i < 3; i++) await gw.send('/dead/x')
  await gw.send('/dead/x')
  for (let i = 0; i < 2; i++) await gw.send('/ok/x')
  await gw.send('/nowhere')
  await gw.log.waitFor(7)

  const otel = await collect()
  const prom = await gw.scrape()
  const expected = { UCF: 3, CBO: 1, '': 2, NRF: 1 }
  t.same(byAttribute(otel.get(instrumentNames.requests), 'response_flag'), expected)
  t.same(sumBy(prom, 'faultline_requests_total', 'response_flag'), expected, 'the same as Prometheus')

  const requests = otel.get(instrumentNames.requests)
  t.equal(requests?.descriptor.unit, '{request}')
  t.same(requests?.dataPoints.find((p) => p.attributes.response_flag === 'CBO')?.attributes, {
    api: 'Dead', method: 'GET', status_class: '5xx', response_flag: 'CBO', error_category: 'upstream', error_source: 'CircuitBreaker', response_source: 'gateway'
  }, 'the Prometheus labels as attributes')

  const duration = otel.get(instrumentNames.requestDuration)
  t.equal(duration?.descriptor.unit, 's')
  t.same(byAttribute(duration, 'api'), { Dead: 4, Ok: 2, '': 1 }, 'every request timed once, by API')
  const point = duration?.dataPoints.find((p) => p.attributes.api === 'Ok')
  t.same((point?.value as { buckets: { boundaries: number[] } }).buckets.boundaries, [...defaultBuckets], 'the same buckets')
  t.same(byAttribute(otel.get(instrumentNames.upstreamDuration), 'api'), { Dead: 3, Ok: 2 })
  t.same(byAttribute(otel.get(instrumentNames.gatewayDuration), 'api'), { Dead: 4, Ok: 2, '': 1 })
  t.same(byAttribute(otel.get(instrumentNames.upstreamRequests), 'target'), { [dead.address]: 3, [ok.address]: 2 })

  const breaker = otel.get(instrumentNames.breakerState)?.dataPoints.filter((p) => p.attributes.api === 'Dead')
  t.same(Object.fromEntries((breaker ?? []).map((p) => [p.attributes.state, p.value])), { closed: 0, open: 1, half_open: 0 })
  t.same(byAttribute(otel.get(instrumentNames.targetsHealthy), 'api'), { Dead: 1, Ok: 1 })
  t.same(byAttribute(otel.get(instrumentNames.targets), 'api'), { Dead: 1, Ok: 1 })
})

t.test('"auto" reports through a MeterProvider registered globally before the plugin', async (t) => {
  const { provider, collect } = sdk(t)
  t.ok(otelMetrics.setGlobalMeterProvider(provider))
  t.teardown(() => otelMetrics.disable())
  const ok = await upstream(t)
  const gw = await startMetricsGateway(t, [{ prefix: '/ok', proxy: { name: 'Ok', upstream: { targets: [ok.url] } } }])
  await gw.send('/ok/a')
  await gw.log.waitFor(1)
  t.same(byAttribute((await collect()).get(instrumentNames.requests), 'api'), { Ok: 1 })
})

t.test('"auto" without a registered provider records nothing through OpenTelemetry', async (t) => {
  const ok = await upstream(t)
  const gw = await startMetricsGateway(t, [{ prefix: '/ok', proxy: { name: 'Ok', upstream: { targets: [ok.url] } } }])
  // Registered after the plugin: too late, as documented.
  const { provider, collect } = sdk(t)
  t.ok(otelMetrics.setGlobalMeterProvider(provider))
  t.teardown(() => otelMetrics.disable())
  await gw.send('/ok/a')
  await gw.log.waitFor(1)
  t.equal((await collect()).size, 0)
  t.same(sumBy(await gw.scrape(), 'faultline_requests_total', 'api'), { Ok: 1 }, 'Prometheus counted it')
})

t.test('prometheus: false serves no exposition and still reports through OpenTelemetry', async (t) => {
  const { provider, collect } = sdk(t)
  const ok = await upstream(t)
  const gw = await startMetricsGateway(t, [{ prefix: '/ok', proxy: { name: 'Ok', upstream: { targets: [ok.url] } } }], { prometheus: false, openTelemetry: provider })
  const res = await gw.send('/metrics')
  t.equal(res.status, 404)
  await gw.send('/ok/a')
  await gw.log.waitFor(2)
  t.same(byAttribute((await collect()).get(instrumentNames.requests), 'response_flag'), { NRF: 1, '': 1 })
  t.equal(await gw.app.faultlineMetrics.metrics(), '\n', 'nothing registered in the registry')
})
