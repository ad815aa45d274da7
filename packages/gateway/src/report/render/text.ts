/**
 * The terminal summary: totals, who to page, top flags with their first check, top targets, the
 * latency of the top flags against the baseline, and the error timeline as sparklines.
 * Everything taken from a log goes through cleanText (no control characters reach the terminal).
 */
import { isErrorDimension } from '../aggregate.js'
import { regroup, describeWidth, meanUpstreamLatency } from '../timeline.js'
import type { ReportSummary } from '../summary.js'
import {
  alignTable, bar, cleanText, fmtCounts, fmtDuration, fmtInt, fmtLatency, fmtMs, fmtPct, fmtTime, fmtTimeAfter, sparkline
} from './format.js'

export interface TextOptions {
  /** Terminal width, for the timeline. Default 100. */
  width?: number
}

const MAX_CELL = 48

function c (text: string, max = MAX_CELL): string {
  return cleanText(text, max)
}

function indent (lines: string[], by = '  '): string[] {
  return lines.map((l) => (l === '' ? l : by + l))
}

function heading (title: string, note?: string): string {
  return '\n' + title.toUpperCase() + (note === undefined ? '' : `  (${note})`)
}

export function headerLines (s: ReportSummary): string[] {
  const inputs = s.input.inputs.length === 1 ? c(s.input.inputs[0], 80) : `${s.input.inputs.length} inputs`
  let span = 'no requests'
  if (s.span !== null) {
    const ms = Date.parse(s.span.last) - Date.parse(s.span.first)
    span = `${fmtTime(s.span.first)} to ${fmtTimeAfter(s.span.last, s.span.first)} UTC (${fmtDuration(ms)})`
  }
  const filters: string[] = []
  if (s.filters.since !== undefined) filters.push(`since ${fmtTime(s.filters.since)}`)
  if (s.filters.until !== undefined) filters.push(`until ${fmtTime(s.filters.until)}`)
  if (s.filters.apis !== undefined) filters.push(`api ${s.filters.apis.map((a) => c(a)).join(', ')}`)
  const out = [`Faultline report: ${inputs}, ${span}`]
  if (filters.length > 0) out.push(`Filters: ${filters.join('; ')}`)
  return out
}

export function skippedText (s: ReportSummary): string {
  const i = s.input
  return `${fmtInt(i.malformed)} malformed, ${fmtInt(i.notAccess)} not access lines, ${fmtInt(i.filtered)} outside the filters`
}

function totals (s: ReportSummary): string[] {
  const t = s.totals
  return [
    '',
    `Requests ${fmtInt(t.requests)}   errors ${fmtInt(t.errors)} (${fmtPct(t.errorRate)})   5xx ${fmtInt(t.status5xx)}   4xx ${fmtInt(t.status4xx)}`,
    `Skipped  ${skippedText(s)}`
  ]
}

function sides (s: ReportSummary): string[] {
  const rows = s.sides.map((x) => [x.side, fmtInt(x.errors), fmtPct(x.share), bar(x.share, 30)])
  const out = [heading('Who to page', 'errors by side'), ...indent(alignTable(rows, new Set([1, 2])))]
  const cats = s.categories.map((x) => [c(x.category), fmtInt(x.errors), fmtPct(x.share)])
  if (cats.length > 0) out.push(heading('Errors by category'), ...indent(alignTable(cats, new Set([1, 2]))))
  const sources = s.responseSources.map((x) => [c(x.source), fmtInt(x.requests), fmtInt(x.errors)])
  out.push(heading('By response source'), ...indent(alignTable([['SOURCE', 'REQUESTS', 'ERRORS'], ...sources], new Set([1, 2]))))
  return out
}

function flagSection (s: ReportSummary): string[] {
  if (s.flags.length === 0) return [heading('Top flags'), '  none: no flagged responses']
  const rows: string[][] = [['FLAG', 'COUNT', 'SHARE', 'SIDE', 'STATUS', 'FIRST SEEN', 'LAST SEEN']]
  for (const f of s.flags) {
    rows.push([c(f.code, 12), fmtInt(f.count), fmtPct(f.share), f.side, c(f.status, 16), fmtTime(f.firstSeen), fmtTimeAfter(f.lastSeen, f.firstSeen)])
  }
  const table = alignTable(rows, new Set([1, 2]))
  const out = [heading('Top flags'), '  ' + table[0]]
  const pad = '        '
  s.flags.forEach((f, i) => {
    out.push('  ' + table[i + 1])
    out.push(`${pad}apis: ${fmtCounts(f.apis, (k) => c(k))}${f.targets.length > 0 ? `   targets: ${fmtCounts(f.targets, (k) => c(k))}` : ''}`)
    out.push(`${pad}check: ${f.known ? f.check : 'unknown flag (not in this version\'s catalogue)'}`)
  })
  if (s.moreFlags > 0) out.push(`  ... and ${fmtInt(s.moreFlags)} more flags`)
  return out
}

function targetSection (s: ReportSummary): string[] {
  if (s.targets.length === 0) return []
  const rows = [['TARGET', 'ERRORS', 'SHARE', 'FLAGS', 'FIRST SEEN', 'LAST SEEN']]
  for (const t of s.targets) {
    rows.push([c(t.target), fmtInt(t.errors), fmtPct(t.share), fmtCounts(t.flags, (k) => c(k, 12)), fmtTime(t.firstSeen), fmtTimeAfter(t.lastSeen, t.firstSeen)])
  }
  const out = [heading('Top error targets'), ...indent(alignTable(rows, new Set([1, 2])))]
  if (s.moreTargets > 0) out.push(`  ... and ${fmtInt(s.moreTargets)} more targets`)
  return out
}

function latencySection (s: ReportSummary): string[] {
  const rows = [['', 'UPSTREAM p50', 'p90', 'p99', 'GATEWAY p50', 'p90', 'p99']]
  const ok = s.okLatency
  const okCount = Math.max(ok.upstream?.count ?? 0, ok.gateway?.count ?? 0)
  if (okCount > 0) rows.push([`not errors (${fmtInt(okCount)})`, ...fmtLatency(ok.upstream), ...fmtLatency(ok.gateway)])
  for (const f of s.flags) rows.push([`${c(f.code, 12)} (${fmtInt(f.count)})`, ...fmtLatency(f.latency.upstream), ...fmtLatency(f.latency.gateway)])
  if (rows.length === 1) return []
  return [heading('Latency (ms)', 'upstream: waiting on the upstream; gateway: the rest'), ...indent(alignTable(rows, new Set([1, 2, 3, 4, 5, 6])))]
}

export function timelineSection (s: ReportSummary, width: number): string[] {
  const columns = Math.max(10, Math.min(120, width - 16))
  const data = regroup(s.timeline, columns)
  if (data.buckets.length === 0) return []
  const rows = s.timeline.categories.map((cat, i) => ({ cat, values: data.buckets.map((b) => b.errors[i]) }))
  const all = data.buckets.map((b) => b.errors.reduce((a, v) => a + v, 0))
  const max = Math.max(...all)
  const label = 14
  const first = data.buckets[0].start
  const last = data.buckets[data.buckets.length - 1].start
  const out = [heading(`Errors per ${describeWidth(data.bucketMs)} by category`, `highest ${fmtInt(max)}`)]
  for (const row of rows) {
    if (row.values.every((v) => v === 0)) continue
    out.push('  ' + row.cat.padEnd(label) + sparkline(row.values, max))
  }
  out.push('  ' + 'all errors'.padEnd(label) + sparkline(all, max))
  out.push('  ' + 'requests'.padEnd(label) + sparkline(data.buckets.map((b) => b.requests), Math.max(...data.buckets.map((b) => b.requests))))
  const upstream = data.buckets.map((b) => meanUpstreamLatency(b) ?? 0)
  const slowest = Math.max(...upstream)
  if (slowest > 0) out.push('  ' + 'upstream ms'.padEnd(label) + sparkline(upstream, slowest) + `  mean, highest ${fmtMs(slowest)}`)
  const from = fmtTime(new Date(first).toISOString())
  const to = fmtTimeAfter(new Date(last).toISOString(), new Date(first).toISOString())
  const gap = Math.max(1, data.buckets.length - from.length - to.length)
  out.push('  ' + ' '.repeat(label) + (data.buckets.length > from.length + to.length ? from + ' '.repeat(gap) + to : `${from} to ${to}`) + ' UTC')
  return out
}

export function malformedSection (s: ReportSummary): string[] {
  const out: string[] = []
  if (s.input.samples.length > 0) {
    out.push(heading('Malformed lines', `${fmtInt(s.input.malformed)} in all; the first ${s.input.samples.length}`))
    for (const m of s.input.samples) out.push(`  ${cleanText(m.input)}:${m.line}  ${m.problem}`)
  }
  if (s.input.errors.length > 0) {
    out.push(heading('Inputs not read to the end'))
    for (const e of s.input.errors) out.push('  ' + c(e, 200))
  }
  return out
}

export function breakdownSection (s: ReportSummary): string[] {
  const b = s.breakdown
  if (b === null) return []
  const errorDim = isErrorDimension(b.by)
  const header = errorDim
    ? [b.by.toUpperCase(), 'ERRORS', 'SHARE', '5XX', 'FIRST SEEN', 'LAST SEEN', 'FLAGS']
    : [b.by.toUpperCase(), 'REQUESTS', 'ERRORS', 'RATE', '5XX', 'FLAGS']
  const rows = [header]
  for (const r of b.rows) {
    rows.push(errorDim
      ? [c(r.key), fmtInt(r.errors), fmtPct(r.share), fmtInt(r.status5xx), fmtTime(r.firstSeen), fmtTimeAfter(r.lastSeen, r.firstSeen), fmtCounts(r.flags, (k) => c(k, 12))]
      : [c(r.key), fmtInt(r.requests), fmtInt(r.errors), fmtPct(r.errorRate ?? 0), fmtInt(r.status5xx), fmtCounts(r.flags, (k) => c(k, 12))])
  }
  return [heading(`Breakdown by ${b.by}`), ...indent(alignTable(rows, errorDim ? new Set([1, 2, 3]) : new Set([1, 2, 3, 4])))]
}

/**
 * The terminal report. With a breakdown (--by), the totals and that table; without, the full
 * summary.
 */
export function renderText (s: ReportSummary, options: TextOptions = {}): string {
  const width = options.width ?? 100
  const out = [...headerLines(s), ...totals(s)]
  if (s.breakdown !== null) {
    out.push(...breakdownSection(s))
  } else {
    out.push(...sides(s), ...flagSection(s), ...targetSection(s), ...latencySection(s), ...timelineSection(s, width))
  }
  out.push(...malformedSection(s))
  return out.join('\n') + '\n'
}
