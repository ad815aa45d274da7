/**
 * The report as data: what every output format renders, and what `--format json` prints.
 * Built once from the aggregate; renderers never see the aggregate itself.
 */
import { flags } from '@faultline/core'
import { isErrorDimension, NONE_LABEL, type Dimension, type ReportAggregate } from './aggregate.js'
import { OTHER_LABEL, type BoundedCounter, type BoundedMap } from './bounded-map.js'
import type { LatencyPercentiles } from './latency-histogram.js'
import { SIDES, type Side } from './side.js'
import { CATEGORIES, OTHER_CATEGORY, type TimelineData } from './timeline.js'

export interface MalformedSample {
  input: string
  line: number
  problem: string
}

/** What the reader saw, besides the access lines. */
export interface InputTally {
  inputs: string[]
  /** Non-blank lines read. */
  lines: number
  blank: number
  /** JSON lines from another logger (msg is not "access"). */
  notAccess: number
  malformed: number
  /** The first few malformed lines, by position. */
  samples: MalformedSample[]
  /** Inputs that could not be read to the end (corrupt gzip, read error). */
  errors: string[]
}

export interface Count {
  key: string
  count: number
}

export interface FlagSummary {
  code: string
  count: number
  /** Share of all errors, 0..1. */
  share: number
  /** In the catalogue of this version. */
  known: boolean
  category: string
  side: Side
  status: string
  errorSource: string
  firstSeen: string
  lastSeen: string
  apis: Count[]
  targets: Count[]
  details: Count[]
  /** The catalogue's sentence for clients, and the first thing to check ("" for an unknown flag). */
  message: string
  check: string
  latency: {
    upstream: LatencyPercentiles | null
    gateway: LatencyPercentiles | null
    total: LatencyPercentiles | null
  }
}

export interface TargetSummary {
  target: string
  errors: number
  share: number
  firstSeen: string
  lastSeen: string
  flags: Count[]
  apis: Count[]
}

export interface ApiSummary {
  api: string
  requests: number
  errors: number
  errorRate: number
  flags: Count[]
}

export interface MonthSummary {
  month: string
  requests: number
  errors: number
  errorRate: number
  sides: Record<Side, number>
  errorSources: Count[]
  categories: Count[]
}

export interface GroupRow {
  key: string
  requests: number
  errors: number
  /** errors / requests for request dimensions (api, hour, day); null for error dimensions. */
  errorRate: number | null
  /** Share of all errors, 0..1. */
  share: number
  status5xx: number
  firstSeen: string
  lastSeen: string
  flags: Count[]
}

export interface ReportSummary {
  report: 'faultline'
  version: 1
  generatedAt: string
  filters: { since?: string, until?: string, apis?: string[] }
  input: InputTally & { accessLines: number, filtered: number }
  /** First and last request counted, ISO 8601; null when none. */
  span: { first: string, last: string } | null
  totals: { requests: number, errors: number, errorRate: number, status4xx: number, status5xx: number }
  sides: Array<{ side: Side, errors: number, share: number }>
  categories: Array<{ category: string, errors: number, share: number }>
  responseSources: Array<{ source: string, requests: number, errors: number }>
  errorSources: Array<{ source: string, errors: number, share: number }>
  flags: FlagSummary[]
  /** Distinct flags not listed in `flags` (beyond --top); a last "(other)" row holds those past the cap. */
  moreFlags: number
  targets: TargetSummary[]
  moreTargets: number
  apis: ApiSummary[]
  moreApis: number
  /** Latency of the requests that were not errors: the baseline for the flags' latencies. */
  okLatency: { upstream: LatencyPercentiles | null, gateway: LatencyPercentiles | null }
  timeline: { categories: string[] } & TimelineData
  months: MonthSummary[]
  breakdown: { by: Dimension, rows: GroupRow[] } | null
}

const MONTH_MS = 28 * 86_400_000

/** Whether the logs call for a monthly breakdown: they cover four weeks or more, or two calendar months. */
export function spansMonths (s: ReportSummary): boolean {
  if (s.months.length > 1) return true
  return s.span !== null && Date.parse(s.span.last) - Date.parse(s.span.first) >= MONTH_MS
}

export interface SummaryOptions {
  top: number
  since?: number
  until?: number
  apis?: string[]
  /** Timeline buckets at most (before renderers merge them further). */
  timelineBuckets?: number
  now?: Date
}

function iso (ms: number): string {
  return Number.isFinite(ms) ? new Date(ms).toISOString() : ''
}

function ratio (n: number, d: number): number {
  return d > 0 ? Math.round((n / d) * 1e6) / 1e6 : 0
}

function counts (counter: BoundedCounter, limit = Infinity): Count[] {
  return counter.top(limit)
}

function byCountThenKey<T> (entries: Array<[string, T]>, count: (v: T) => number): Array<[string, T]> {
  return entries.sort((a, b) => count(b[1]) - count(a[1]) || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
}

/**
 * The `top` largest entries, then the "(other)" entry (keys past the map's cap), always last;
 * `more`: entries with a key of their own left out.
 */
function ranked<V> (map: BoundedMap<V>, count: (v: V) => number, top = Infinity): { rows: Array<[string, V]>, more: number } {
  const sorted = byCountThenKey([...map.entries], count)
  const rows = sorted.slice(0, top)
  if (map.other !== undefined) rows.push([OTHER_LABEL, map.other])
  return { rows, more: Math.max(0, sorted.length - top) }
}

export function buildSummary (agg: ReportAggregate, tally: InputTally, options: SummaryOptions): ReportSummary {
  const top = options.top
  const errors = agg.errors

  const flagRanking = ranked(agg.flags, (s) => s.count, top)
  const flagRows: FlagSummary[] = flagRanking.rows.map(([code, s]) => {
    const def = Object.hasOwn(flags, code) ? flags[code] : undefined
    return {
      code,
      count: s.count,
      share: ratio(s.count, errors),
      known: def !== undefined,
      category: def?.category ?? s.categories.top(1)[0]?.key ?? NONE_LABEL,
      side: s.side,
      status: s.statuses.top().map((c) => c.key).join(', '),
      errorSource: s.errorSources.top().map((c) => c.key).join(', '),
      firstSeen: iso(s.first),
      lastSeen: iso(s.last),
      apis: counts(s.apis, 5),
      targets: counts(s.targets, 5),
      details: counts(s.details, 5),
      message: def?.message ?? '',
      check: def?.check ?? '',
      latency: {
        upstream: s.upstreamLatency.percentiles(),
        gateway: s.gatewayLatency.percentiles(),
        total: s.totalLatency.percentiles()
      }
    }
  })

  const targetRanking = ranked(agg.targets, (s) => s.errors, top)
  const targets: TargetSummary[] = targetRanking.rows.map(([target, s]) => ({
    target,
    errors: s.errors,
    share: ratio(s.errors, errors),
    firstSeen: iso(s.first),
    lastSeen: iso(s.last),
    flags: counts(s.flags, 5),
    apis: counts(s.apis, 5)
  }))

  const apiRanking = ranked(agg.apis, (s) => s.requests, top)
  const apis: ApiSummary[] = apiRanking.rows.map(([api, s]) => ({
    api,
    requests: s.requests,
    errors: s.errors,
    errorRate: ratio(s.errors, s.requests),
    flags: counts(s.flags, 5)
  }))

  const months: MonthSummary[] = [...agg.months.all()]
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .map(([month, s]) => ({
      month,
      requests: s.requests,
      errors: s.errors,
      errorRate: ratio(s.errors, s.requests),
      sides: { upstream: s.sides[0], gateway: s.sides[1], client: s.sides[2] },
      errorSources: counts(s.errorSources),
      categories: counts(s.categories)
    }))

  let breakdown: ReportSummary['breakdown'] = null
  const by = agg.by
  if (by !== undefined) {
    const timeOrder = by === 'hour' || by === 'day'
    const sorted = timeOrder
      ? [...agg.groups.all()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
      : ranked(agg.groups, (g) => isErrorDimension(by) ? g.errors : g.requests).rows
    breakdown = {
      by,
      rows: sorted.map(([key, g]) => ({
        key,
        requests: g.requests,
        errors: g.errors,
        errorRate: isErrorDimension(by) ? null : ratio(g.errors, g.requests),
        share: ratio(g.errors, errors),
        status5xx: g.status5xx,
        firstSeen: iso(g.first),
        lastSeen: iso(g.last),
        flags: counts(g.flags, 5)
      }))
    }
  }

  const filters: ReportSummary['filters'] = {}
  if (options.since !== undefined) filters.since = iso(options.since)
  if (options.until !== undefined) filters.until = iso(options.until)
  if (options.apis !== undefined && options.apis.length > 0) filters.apis = [...options.apis]

  return {
    report: 'faultline',
    version: 1,
    generatedAt: (options.now ?? new Date()).toISOString(),
    filters,
    input: { ...tally, accessLines: agg.accessLines, filtered: agg.filtered },
    span: agg.requests > 0 ? { first: iso(agg.first), last: iso(agg.last) } : null,
    totals: {
      requests: agg.requests,
      errors,
      errorRate: ratio(errors, agg.requests),
      status4xx: agg.status4xx,
      status5xx: agg.status5xx
    },
    sides: SIDES.map((side, i) => ({ side, errors: agg.sides[i], share: ratio(agg.sides[i], errors) })),
    categories: agg.categories.top().map((c) => ({ category: c.key, errors: c.count, share: ratio(c.count, errors) })),
    responseSources: byCountThenKey([...agg.responseSources.all()], (s) => s.requests)
      .map(([source, s]) => ({ source, requests: s.requests, errors: s.errors })),
    errorSources: agg.errorSources.top().map((c) => ({ source: c.key, errors: c.count, share: ratio(c.count, errors) })),
    flags: flagRows,
    moreFlags: flagRanking.more,
    targets,
    moreTargets: targetRanking.more,
    apis,
    moreApis: apiRanking.more,
    okLatency: { upstream: agg.okUpstreamLatency.percentiles(), gateway: agg.okGatewayLatency.percentiles() },
    timeline: { categories: [...CATEGORIES, OTHER_CATEGORY], ...agg.timeline.series(options.timelineBuckets ?? 720) },
    months,
    breakdown
  }
}
