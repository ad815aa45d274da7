/**
 * The same instruments through the OpenTelemetry metrics API, for apps that registered an SDK
 * MeterProvider. Counts and gauges are observable (read from the per-API series when the SDK
 * collects: nothing on the request path); the three latency histograms are recorded per request,
 * since OpenTelemetry has no observable histogram.
 *
 * Names follow OpenTelemetry's style; an OpenTelemetry Prometheus exporter turns them into the
 * names this package's own exposition uses (`faultline.requests` -> `faultline_requests_total`,
 * `faultline.request.duration` in `s` -> `faultline_request_duration_seconds`).
 */
import {
  createNoopMeter,
  metrics,
  ValueType,
  type Histogram,
  type Meter,
  type MeterProvider,
  type Observable,
  type ObservableCallback
} from '@opentelemetry/api'
import { breakerStates, type ApiSeries } from './api-series.js'

export const instrumentNames = Object.freeze({
  requests: 'faultline.requests',
  requestDuration: 'faultline.request.duration',
  upstreamDuration: 'faultline.upstream.duration',
  gatewayDuration: 'faultline.gateway.duration',
  upstreamRequests: 'faultline.upstream.requests',
  rateLimitDegraded: 'faultline.rate_limit.degraded',
  breakerState: 'faultline.circuit_breaker.state',
  targets: 'faultline.upstream.targets',
  targetsHealthy: 'faultline.upstream.targets.healthy',
  targetHealthy: 'faultline.upstream.target.healthy'
})

export interface OtelInstruments {
  request: Histogram
  upstream: Histogram
  gateway: Histogram
  /** Detaches the observable callbacks (the meter may outlive the app). */
  close: () => void
}

const METER_NAME = '@faultline/metrics'

/**
 * The meter to use: the given provider's, or the global one's when an SDK registered one
 * (`'auto'`). `undefined` when there is nothing to report to.
 */
export function resolveMeter (setting: 'auto' | boolean | MeterProvider): Meter | undefined {
  if (setting === false) return undefined
  if (typeof setting === 'object') return setting.getMeter(METER_NAME)
  const meter = metrics.getMeter(METER_NAME)
  // Without a registered provider the API hands out its no-op meter: skip the work entirely.
  if (setting === 'auto' && meter === createNoopMeter()) return undefined
  return meter
}

export function registerOtelInstruments (meter: Meter, apis: () => Iterable<ApiSeries>, buckets: readonly number[]): OtelInstruments {
  const advice = { explicitBucketBoundaries: [...buckets] }
  const observed: Array<[Observable, ObservableCallback]> = []
  function observe (instrument: Observable, callback: ObservableCallback): void {
    instrument.addCallback(callback)
    observed.push([instrument, callback])
  }
  const instruments: OtelInstruments = {
    request: meter.createHistogram(instrumentNames.requestDuration, { unit: 's', description: 'Time from the request\'s start to its last byte (or its abort)', advice }),
    upstream: meter.createHistogram(instrumentNames.upstreamDuration, { unit: 's', description: 'Time spent waiting on the upstream, failures included', advice }),
    gateway: meter.createHistogram(instrumentNames.gatewayDuration, { unit: 's', description: 'Time spent in the gateway itself (total minus upstream)', advice }),
    close () {
      for (const [instrument, callback] of observed) instrument.removeCallback(callback)
      observed.length = 0
    }
  }

  const count = { unit: '{request}', valueType: ValueType.INT }
  observe(meter.createObservableCounter(instrumentNames.requests, {
    ...count,
    description: 'Requests by API, method, status class and response flag (empty on success), with the flag\'s error category and source'
  }), (result) => {
    for (const api of apis()) for (const series of api.requests.values()) result.observe(series.count, series.labels)
  })
  observe(meter.createObservableCounter(instrumentNames.upstreamRequests, {
    ...count,
    description: 'Requests that reached an upstream target, by the target (host:port) and the response flag (empty on success)'
  }), (result) => {
    for (const api of apis()) for (const series of api.targetSeries()) result.observe(series.count, series.labels)
  })
  observe(meter.createObservableCounter(instrumentNames.rateLimitDegraded, {
    ...count,
    description: 'Requests let through without a rate-limit or quota check because the shared store failed (fail-open)'
  }), (result) => {
    for (const api of apis()) if (api.degraded > 0) result.observe(api.degraded, api.apiLabels)
  })
  observe(meter.createObservableGauge(instrumentNames.breakerState, {
    valueType: ValueType.INT,
    description: 'Circuit breaker state of each API: 1 for the current state (closed, open, half_open), 0 for the others'
  }), (result) => {
    for (const api of apis()) {
      const state = api.breaker?.state
      if (state === undefined) continue
      for (const s of breakerStates) result.observe(s === state ? 1 : 0, { api: api.name, state: s })
    }
  })
  const targets = { unit: '{target}', valueType: ValueType.INT }
  observe(meter.createObservableGauge(instrumentNames.targets, { ...targets, description: 'Upstream targets configured for each API' }), (result) => {
    for (const api of apis()) if (api.targets !== undefined) result.observe(api.targets.list().length, api.apiLabels)
  })
  observe(meter.createObservableGauge(instrumentNames.targetsHealthy, { ...targets, description: 'Upstream targets of each API that its balancer considers healthy' }), (result) => {
    for (const api of apis()) {
      if (api.targets === undefined) continue
      let healthy = 0
      for (const target of api.targets.list()) if (target.healthy) healthy++
      result.observe(healthy, api.apiLabels)
    }
  })
  observe(meter.createObservableGauge(instrumentNames.targetHealthy, { valueType: ValueType.INT, description: 'Whether the balancer considers an upstream target healthy (1) or not (0)' }), (result) => {
    for (const api of apis()) {
      if (api.targets === undefined) continue
      for (const target of api.targets.list()) result.observe(target.healthy ? 1 : 0, { api: api.name, target: target.address })
    }
  })
  return instruments
}
