/**
 * The prom-client side: metrics registered in a registry, filled from the per-API series when the
 * registry is read (a scrape), never on the request path.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client'
import { breakerStates, type ApiSeries, type TargetsView } from './api-series.js'
import type { Duration } from './duration.js'

type TargetsList = ReturnType<TargetsView['list']>

export const metricNames = Object.freeze({
  requests: 'faultline_requests_total',
  requestDuration: 'faultline_request_duration_seconds',
  upstreamDuration: 'faultline_upstream_duration_seconds',
  gatewayDuration: 'faultline_gateway_duration_seconds',
  upstreamRequests: 'faultline_upstream_requests_total',
  rateLimitDegraded: 'faultline_rate_limit_degraded_total',
  breakerState: 'faultline_circuit_breaker_state',
  targets: 'faultline_upstream_targets',
  targetsHealthy: 'faultline_upstream_targets_healthy',
  targetHealthy: 'faultline_upstream_target_healthy'
})

interface Sample { labels: Record<string, string | number>, value: number, metricName?: string }

/**
 * A histogram whose buckets live in `Duration`s (one per API). prom-client's registry reads a
 * metric through `get()` (and `getForPromString()` for histograms when it has one): both are
 * answered from the durations.
 */
class DurationHistogram extends Histogram<'api'> {
  private readonly metricName: string
  private readonly metricHelp: string
  private readonly bounds: readonly number[]
  private readonly pick: (api: ApiSeries) => Duration
  private readonly apis: () => Iterable<ApiSeries>

  constructor (name: string, help: string, bounds: readonly number[], registry: Registry, apis: () => Iterable<ApiSeries>, pick: (api: ApiSeries) => Duration) {
    super({ name, help, labelNames: ['api'], buckets: [...bounds], registers: [registry] })
    this.metricName = name
    this.metricHelp = help
    this.bounds = bounds
    this.apis = apis
    this.pick = pick
  }

  private samples (): Sample[] {
    const out: Sample[] = []
    const bucket = `${this.metricName}_bucket`
    for (const api of this.apis()) {
      const d = this.pick(api)
      if (d.count === 0) continue
      let cumulative = 0
      for (let i = 0; i < this.bounds.length; i++) {
        cumulative += d.counts[i]
        out.push({ labels: { api: api.name, le: this.bounds[i] }, value: cumulative, metricName: bucket })
      }
      out.push({ labels: { api: api.name, le: '+Inf' }, value: d.count, metricName: bucket })
      out.push({ labels: { api: api.name }, value: d.sum, metricName: `${this.metricName}_sum` })
      out.push({ labels: { api: api.name }, value: d.count, metricName: `${this.metricName}_count` })
    }
    return out
  }

  override async get (): ReturnType<Histogram<'api'>['get']> {
    return { name: this.metricName, help: this.metricHelp, type: 'histogram' as never, values: this.samples() as never, aggregator: 'sum' } as unknown as Awaited<ReturnType<Histogram<'api'>['get']>>
  }

  async getForPromString (): ReturnType<Histogram<'api'>['get']> {
    return await this.get()
  }
}

interface Counted { readonly labels: Readonly<Record<string, string>>, count: number }

/**
 * A counter kept in plain numbers on the request path; when the registry is read, what was counted
 * since the last read is added to prom-client's counter (its public `inc`), one call per series.
 */
function syncedCounter (registry: Registry, name: string, help: string, labelNames: string[], read: () => Iterable<Counted>): void {
  const reported = new WeakMap<Counted, number>()
  // eslint-disable-next-line no-new
  new Counter({
    name,
    help,
    labelNames,
    registers: [registry],
    collect (this: Counter<string>) {
      for (const series of read()) {
        const before = reported.get(series) ?? 0
        if (series.count > before) {
          this.inc(series.labels, series.count - before)
          reported.set(series, series.count)
        }
      }
    }
  })
}

export function registerPrometheusMetrics (registry: Registry, apis: () => Iterable<ApiSeries>, buckets: readonly number[]): void {
  syncedCounter(registry, metricNames.requests,
    'Requests by API, method, status class and response flag (empty on success), with the flag\'s error category and source',
    ['api', 'method', 'status_class', 'response_flag', 'error_category', 'error_source', 'response_source'],
    function * () { for (const api of apis()) yield * api.requests.values() })

  syncedCounter(registry, metricNames.upstreamRequests,
    'Requests that reached an upstream target, by the target (host:port) and the response flag (empty on success)',
    ['api', 'target', 'response_flag'],
    function * () { for (const api of apis()) yield * api.targetSeries() })

  const degraded = new WeakMap<ApiSeries, { labels: Readonly<{ api: string }>, count: number }>()
  syncedCounter(registry, metricNames.rateLimitDegraded,
    'Requests let through without a rate-limit or quota check because the shared store failed (fail-open)',
    ['api'],
    function * () {
      for (const api of apis()) {
        if (api.degraded === 0) continue
        let entry = degraded.get(api)
        if (entry === undefined) {
          entry = { labels: api.apiLabels, count: 0 }
          degraded.set(api, entry)
        }
        entry.count = api.degraded
        yield entry
      }
    })

  new DurationHistogram(metricNames.requestDuration, 'Time from the request\'s start to its last byte (or its abort), in seconds', buckets, registry, apis, (a) => a.request) // eslint-disable-line no-new
  new DurationHistogram(metricNames.upstreamDuration, 'Time spent waiting on the upstream, failures included, in seconds', buckets, registry, apis, (a) => a.upstream) // eslint-disable-line no-new
  new DurationHistogram(metricNames.gatewayDuration, 'Time spent in the gateway itself (total minus upstream), in seconds', buckets, registry, apis, (a) => a.gateway) // eslint-disable-line no-new

  // eslint-disable-next-line no-new
  new Gauge({
    name: metricNames.breakerState,
    help: 'Circuit breaker state of each API: 1 for the current state (closed, open, half_open), 0 for the others',
    labelNames: ['api', 'state'],
    registers: [registry],
    collect (this: Gauge<string>) {
      this.reset()
      for (const api of apis()) {
        const breaker = api.breaker
        if (breaker === undefined) continue
        const state = breaker.state
        for (const s of breakerStates) this.set({ api: api.name, state: s }, s === state ? 1 : 0)
      }
    }
  })

  // Each gauge reads the balancers itself when collected: a scrape reads them three times, which
  // costs less than keeping the gauges in step on the request path.
  const targetGauge = (name: string, help: string, labelNames: string[], fill: (gauge: Gauge<string>, api: ApiSeries, targets: TargetsList) => void): void => {
    // eslint-disable-next-line no-new
    new Gauge({
      name,
      help,
      labelNames,
      registers: [registry],
      collect (this: Gauge<string>) {
        this.reset()
        for (const api of apis()) {
          if (api.targets !== undefined) fill(this, api, api.targets.list())
        }
      }
    })
  }
  targetGauge(metricNames.targets, 'Upstream targets configured for each API', ['api'], (gauge, api, targets) => {
    gauge.set(api.apiLabels, targets.length)
  })
  targetGauge(metricNames.targetsHealthy, 'Upstream targets of each API that its balancer considers healthy', ['api'], (gauge, api, targets) => {
    let healthy = 0
    for (const target of targets) if (target.healthy) healthy++
    gauge.set(api.apiLabels, healthy)
  })
  targetGauge(metricNames.targetHealthy, 'Whether the balancer considers an upstream target healthy (1) or not (0)', ['api', 'target'], (gauge, api, targets) => {
    for (const target of targets) gauge.set({ api: api.name, target: target.address }, target.healthy ? 1 : 0)
  })
}
