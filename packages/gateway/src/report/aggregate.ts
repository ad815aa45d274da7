/**
 * Folds access lines into counts, in memory bounded whatever the input: every map is capped
 * (BoundedMap), latencies go to fixed histograms, the timeline coarsens itself.
 */
import type { AccessFields } from './access-line.js'
import { BoundedCounter, BoundedMap } from './bounded-map.js'
import { LatencyHistogram } from './latency-histogram.js'
import { sideIndex, sideOf, type Side } from './side.js'
import { categorySlot, Timeline } from './timeline.js'

export const DIMENSIONS = ['flag', 'source', 'category', 'side', 'api', 'target', 'hour', 'day'] as const
export type Dimension = typeof DIMENSIONS[number]

/** Dimensions whose groups hold error lines only (the others hold every request). */
export function isErrorDimension (by: Dimension): boolean {
  return by !== 'api' && by !== 'hour' && by !== 'day'
}

export interface AggregateOptions {
  /** ms since the epoch; lines before it are left out. */
  since?: number
  /** ms since the epoch; lines at or after it are left out. */
  until?: number
  /** Only these APIs (`api_name`). */
  apis?: ReadonlySet<string>
  /** The dimension of the breakdown table, if any. */
  by?: Dimension
}

/** Caps: distinct keys kept before the rest goes to "(other)". */
export const LIMITS = {
  apis: 1000,
  targets: 1000,
  flags: 256,
  errorSources: 256,
  categories: 64,
  responseSources: 16,
  perFlag: 100,
  perTarget: 64,
  months: 1200,
  groups: 1000,
  timeGroups: 100_000
} as const

/** Label for lines without the field a table groups by. */
export const NONE_LABEL = '(none)'

export class FlagStats {
  count = 0
  first = Infinity
  last = -Infinity
  side: Side = 'client'
  readonly categories = new BoundedCounter(8)
  readonly statuses = new BoundedCounter(16)
  readonly errorSources = new BoundedCounter(16)
  readonly details = new BoundedCounter(32)
  readonly apis = new BoundedCounter(LIMITS.perFlag)
  readonly targets = new BoundedCounter(LIMITS.perFlag)
  readonly upstreamLatency = new LatencyHistogram()
  readonly gatewayLatency = new LatencyHistogram()
  readonly totalLatency = new LatencyHistogram()
}

export class TargetStats {
  errors = 0
  first = Infinity
  last = -Infinity
  readonly flags = new BoundedCounter(LIMITS.perTarget)
  readonly apis = new BoundedCounter(LIMITS.perTarget)
}

export class ApiStats {
  requests = 0
  errors = 0
  readonly flags = new BoundedCounter(LIMITS.perTarget)
}

export class CountStats {
  requests = 0
  errors = 0
}

export class MonthStats {
  requests = 0
  errors = 0
  /** Errors per side, in SIDES order. */
  readonly sides = [0, 0, 0]
  readonly errorSources = new BoundedCounter(LIMITS.perTarget)
  readonly categories = new BoundedCounter(16)
}

export class GroupStats {
  requests = 0
  errors = 0
  status5xx = 0
  first = Infinity
  last = -Infinity
  readonly flags = new BoundedCounter(LIMITS.perTarget)
}

const HOUR = 3_600_000
const DAY = 86_400_000

function pad2 (n: number): string {
  return n < 10 ? '0' + String(n) : String(n)
}

export class ReportAggregate {
  /** Access lines seen (before filters). */
  accessLines = 0
  /** Access lines left out by --since, --until or --api. */
  filtered = 0
  requests = 0
  errors = 0
  status4xx = 0
  status5xx = 0
  first = Infinity
  last = -Infinity
  /** Errors per side, in SIDES order. */
  readonly sides = [0, 0, 0]
  readonly categories = new BoundedCounter(LIMITS.categories)
  readonly errorSources = new BoundedCounter(LIMITS.errorSources)
  readonly responseSources = new BoundedMap(LIMITS.responseSources, () => new CountStats())
  readonly flags = new BoundedMap(LIMITS.flags, () => new FlagStats())
  readonly targets = new BoundedMap(LIMITS.targets, () => new TargetStats())
  readonly apis = new BoundedMap(LIMITS.apis, () => new ApiStats())
  readonly months = new BoundedMap(LIMITS.months, () => new MonthStats())
  readonly groups: BoundedMap<GroupStats>
  /** Latencies of the requests that were not errors: the baseline the flags compare with. */
  readonly okUpstreamLatency = new LatencyHistogram()
  readonly okGatewayLatency = new LatencyHistogram()
  readonly timeline = new Timeline()

  private readonly since: number
  private readonly until: number
  private readonly apiFilter: ReadonlySet<string> | undefined
  readonly by: Dimension | undefined

  // Month and hour/day of the previous line: consecutive lines almost always share them.
  private monthStart = Infinity
  private monthEnd = -Infinity
  private month: MonthStats | undefined
  private periodStart = Infinity
  private periodEnd = -Infinity
  private period: GroupStats | undefined

  constructor (options: AggregateOptions = {}) {
    this.since = options.since ?? -Infinity
    this.until = options.until ?? Infinity
    this.apiFilter = options.apis !== undefined && options.apis.size > 0 ? options.apis : undefined
    this.by = options.by
    const timeGroups = this.by === 'hour' || this.by === 'day'
    this.groups = new BoundedMap(timeGroups ? LIMITS.timeGroups : LIMITS.groups, () => new GroupStats())
  }

  add (f: AccessFields): void {
    this.accessLines++
    const time = f.time
    if (time < this.since || time >= this.until ||
      (this.apiFilter !== undefined && (f.apiName === undefined || !this.apiFilter.has(f.apiName)))) {
      this.filtered++
      return
    }
    this.requests++
    if (time < this.first) this.first = time
    if (time > this.last) this.last = time
    const status = f.status
    if (status >= 500) this.status5xx++
    else if (status >= 400) this.status4xx++

    const flag = f.flag
    const isError = flag !== undefined && flag !== ''
    const responseSource = this.responseSources.slot(f.responseSource ?? NONE_LABEL)
    responseSource.requests++
    const api = this.apis.slot(f.apiName ?? NONE_LABEL)
    api.requests++
    const month = this.monthOf(time)
    month.requests++
    const by = this.by
    let group: GroupStats | undefined
    if (by === 'api') group = this.groups.slot(f.apiName ?? NONE_LABEL)
    else if (by === 'hour' || by === 'day') group = this.periodOf(time, by === 'hour' ? HOUR : DAY)
    if (group !== undefined) this.count(group, time, status)

    if (!isError) {
      this.okUpstreamLatency.record(f.upstreamLatency)
      this.okGatewayLatency.record(f.gatewayLatency)
      this.timeline.add(time, 0, f.upstreamLatency)
      return
    }

    this.errors++
    responseSource.errors++
    api.errors++
    api.flags.add(flag)
    month.errors++
    const category = f.category ?? NONE_LABEL
    const errorSource = f.errorSource ?? NONE_LABEL
    const side = sideOf(flag, f.category, status)
    const s = sideIndex(side)
    this.sides[s]++
    month.sides[s]++
    month.errorSources.add(errorSource)
    month.categories.add(category)
    this.categories.add(category)
    this.errorSources.add(errorSource)
    this.timeline.add(time, categorySlot(f.category), f.upstreamLatency)

    const stats = this.flags.slot(flag)
    if (stats.count === 0) stats.side = side
    stats.count++
    if (time < stats.first) stats.first = time
    if (time > stats.last) stats.last = time
    stats.categories.add(category)
    stats.statuses.add(String(status))
    stats.errorSources.add(errorSource)
    if (f.details !== undefined) stats.details.add(f.details)
    stats.apis.add(f.apiName ?? NONE_LABEL)
    if (f.target !== undefined) stats.targets.add(f.target)
    stats.upstreamLatency.record(f.upstreamLatency)
    stats.gatewayLatency.record(f.gatewayLatency)
    stats.totalLatency.record(f.latencyTotal)

    if (f.target !== undefined) {
      const target = this.targets.slot(f.target)
      target.errors++
      if (time < target.first) target.first = time
      if (time > target.last) target.last = time
      target.flags.add(flag)
      target.apis.add(f.apiName ?? NONE_LABEL)
    }

    if (group !== undefined) {
      group.errors++
      group.flags.add(flag)
    } else if (by !== undefined) {
      const key = by === 'flag'
        ? flag
        : by === 'source' ? errorSource : by === 'category' ? category : by === 'side' ? side : f.target ?? NONE_LABEL
      const g = this.groups.slot(key)
      this.count(g, time, status)
      g.errors++
      g.flags.add(flag)
    }
  }

  private count (group: GroupStats, time: number, status: number): void {
    group.requests++
    if (status >= 500) group.status5xx++
    if (time < group.first) group.first = time
    if (time > group.last) group.last = time
  }

  private monthOf (time: number): MonthStats {
    if (time >= this.monthStart && time < this.monthEnd && this.month !== undefined) return this.month
    const d = new Date(time)
    const y = d.getUTCFullYear()
    const m = d.getUTCMonth()
    this.monthStart = Date.UTC(y, m, 1)
    this.monthEnd = Date.UTC(y, m + 1, 1)
    this.month = this.months.slot(`${y}-${pad2(m + 1)}`)
    return this.month
  }

  private periodOf (time: number, width: number): GroupStats {
    if (time >= this.periodStart && time < this.periodEnd && this.period !== undefined) return this.period
    this.periodStart = Math.floor(time / width) * width
    this.periodEnd = this.periodStart + width
    const iso = new Date(this.periodStart).toISOString()
    this.period = this.groups.slot(width === HOUR ? iso.slice(0, 13) + ':00Z' : iso.slice(0, 10))
    return this.period
  }
}
