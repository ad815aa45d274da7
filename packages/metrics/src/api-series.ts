/**
 * What the metrics keep per API: request counts per label combination, the three latency
 * histograms, per-target counts, rate-limit degradations, and the API's breaker and balancer
 * (read at scrape time). Every map here is bounded by the closed label tables and `maxTargets`.
 */
import { Duration } from './duration.js'
import {
  errorSources,
  flagCategories,
  flagCodes,
  methods,
  OTHER,
  responseSources,
  statusClasses
} from './label-values.js'

export type RequestLabels = Readonly<{
  api: string
  method: string
  status_class: string
  response_flag: string
  error_category: string
  error_source: string
  response_source: string
}>

export interface RequestSeries {
  readonly labels: RequestLabels
  count: number
}

export interface TargetSeries {
  readonly labels: Readonly<{ api: string, target: string, response_flag: string }>
  count: number
}

/** What the metrics read of an API's breaker (`fastify.faultlineBreaker`, @faultline/breaker). */
export interface BreakerView {
  readonly state: string
}

/** What the metrics read of an API's balancer (`fastify.faultlineTargets`, @faultline/proxy). */
export interface TargetsView {
  list: () => ReadonlyArray<{ readonly address: string, readonly healthy: boolean }>
}

export const breakerStates: readonly string[] = Object.freeze(['closed', 'open', 'half_open'])

export class ApiSeries {
  readonly name: string
  readonly apiLabels: Readonly<{ api: string }>
  readonly requests = new Map<number, RequestSeries>()
  readonly request: Duration
  readonly upstream: Duration
  readonly gateway: Duration
  /** Requests let through unlimited because the rate-limit or quota store failed (fail-open). */
  degraded = 0
  breaker: BreakerView | undefined = undefined
  targets: TargetsView | undefined = undefined
  private readonly byTarget = new Map<string, Map<number, TargetSeries>>()
  private readonly maxTargets: number

  constructor (name: string, buckets: readonly number[], maxTargets: number) {
    this.name = name
    this.apiLabels = Object.freeze({ api: name })
    this.request = new Duration(buckets)
    this.upstream = new Duration(buckets)
    this.gateway = new Duration(buckets)
    this.maxTargets = maxTargets
  }

  /** The series of a key not seen before (see requestKey); created once, then found by the key. */
  addRequestSeries (key: number, method: number, statusClass: number, flag: number, source: number, upstream: boolean): RequestSeries {
    const series: RequestSeries = {
      labels: Object.freeze({
        api: this.name,
        method: methods[method],
        status_class: statusClasses[statusClass],
        response_flag: flagCodes[flag],
        error_category: flagCategories[flag],
        error_source: errorSources[source],
        response_source: responseSources[upstream ? 1 : 0]
      }),
      count: 0
    }
    this.requests.set(key, series)
    return series
  }

  /** Counts a request that reached `address`; targets past `maxTargets` share the `other` series. */
  countTarget (address: string, flag: number): void {
    let flags = this.byTarget.get(address)
    if (flags === undefined) {
      if (this.byTarget.size >= this.maxTargets && address !== OTHER) {
        this.countTarget(OTHER, flag)
        return
      }
      flags = new Map()
      this.byTarget.set(address, flags)
    }
    let series = flags.get(flag)
    if (series === undefined) {
      series = { labels: Object.freeze({ api: this.name, target: address, response_flag: flagCodes[flag] }), count: 0 }
      flags.set(flag, series)
    }
    series.count++
  }

  * targetSeries (): Generator<TargetSeries> {
    for (const flags of this.byTarget.values()) yield * flags.values()
  }

  reset (): void {
    this.requests.clear()
    this.byTarget.clear()
    this.request.reset()
    this.upstream.reset()
    this.gateway.reset()
    this.degraded = 0
  }
}
