/**
 * The report as Markdown (GitHub-flavoured tables), for tickets, incident notes and monthly
 * reports. Text from a log is escaped: it cannot close a table cell, start a link or inject HTML.
 */
import { isErrorDimension } from '../aggregate.js'
import { spansMonths, type ReportSummary } from '../summary.js'
import { regroup, describeWidth, meanUpstreamLatency } from '../timeline.js'
import { cleanText, fmtCounts, fmtDuration, fmtInt, fmtLatency, fmtMs, fmtPct, fmtTime, fmtTimeAfter, sparkline } from './format.js'

const MD_SPECIAL = /[\\`*_[\]|~<>&#!]/g
const MD_ENTITY: Record<string, string> = { '<': '&lt;', '>': '&gt;', '&': '&amp;' }

/** Log text for a Markdown table cell: controls removed, markup characters escaped. */
export function md (text: string, max = 80): string {
  return cleanText(text, max).replace(MD_SPECIAL, (ch) => MD_ENTITY[ch] ?? '\\' + ch)
}

function table (header: string[], rows: string[][], right: ReadonlySet<number> = new Set()): string[] {
  return [
    `| ${header.join(' | ')} |`,
    `|${header.map((_, i) => (right.has(i) ? '---:' : '---')).join('|')}|`,
    ...rows.map((r) => `| ${r.join(' | ')} |`)
  ]
}

function timeline (s: ReportSummary): string[] {
  const data = regroup(s.timeline, 72)
  if (data.buckets.length === 0) return []
  const all = data.buckets.map((b) => b.errors.reduce((a, v) => a + v, 0))
  const max = Math.max(...all)
  const lines = ['', `## Errors per ${describeWidth(data.bucketMs)} by category`, '', '```']
  s.timeline.categories.forEach((cat, i) => {
    const values = data.buckets.map((b) => b.errors[i])
    if (values.some((v) => v > 0)) lines.push(cat.padEnd(12) + sparkline(values, max))
  })
  lines.push('all errors'.padEnd(12) + sparkline(all, max))
  const upstream = data.buckets.map((b) => meanUpstreamLatency(b) ?? 0)
  const slowest = Math.max(...upstream)
  if (slowest > 0) lines.push('upstream ms'.padEnd(12) + sparkline(upstream, slowest) + `  mean, highest ${fmtMs(slowest)}`)
  const first = new Date(data.buckets[0].start).toISOString()
  const last = new Date(data.buckets[data.buckets.length - 1].start).toISOString()
  lines.push('```', '', `From ${fmtTime(first)} to ${fmtTimeAfter(last, first)} UTC; highest: ${fmtInt(max)} errors per ${describeWidth(data.bucketMs)}.`)
  return lines
}

export function renderMarkdown (s: ReportSummary): string {
  const out: string[] = ['# Faultline report', '']
  const t = s.totals
  out.push(`- Inputs: ${s.input.inputs.map((i) => md(i)).join(', ')}`)
  if (s.span !== null) {
    const ms = Date.parse(s.span.last) - Date.parse(s.span.first)
    out.push(`- Span: ${fmtTime(s.span.first)} to ${fmtTimeAfter(s.span.last, s.span.first)} UTC (${fmtDuration(ms)})`)
  }
  if (s.filters.since !== undefined) out.push(`- Since: ${fmtTime(s.filters.since)} UTC`)
  if (s.filters.until !== undefined) out.push(`- Until: ${fmtTime(s.filters.until)} UTC`)
  if (s.filters.apis !== undefined) out.push(`- APIs: ${s.filters.apis.map((a) => md(a)).join(', ')}`)
  out.push(`- Requests: **${fmtInt(t.requests)}**, errors: **${fmtInt(t.errors)}** (${fmtPct(t.errorRate)}), 5xx: ${fmtInt(t.status5xx)}, 4xx: ${fmtInt(t.status4xx)}`)
  out.push(`- Skipped: ${fmtInt(s.input.malformed)} malformed, ${fmtInt(s.input.notAccess)} not access lines, ${fmtInt(s.input.filtered)} outside the filters`)

  const b = s.breakdown
  if (b !== null) {
    const errorDim = isErrorDimension(b.by)
    out.push('', `## Breakdown by ${b.by}`, '')
    out.push(...(errorDim
      ? table([b.by, 'Errors', 'Share', '5xx', 'First seen', 'Last seen', 'Flags'], b.rows.map((r) => [
        md(r.key), fmtInt(r.errors), fmtPct(r.share), fmtInt(r.status5xx), fmtTime(r.firstSeen), fmtTime(r.lastSeen), md(fmtCounts(r.flags), 120)
      ]), new Set([1, 2, 3]))
      : table([b.by, 'Requests', 'Errors', 'Error rate', '5xx', 'Flags'], b.rows.map((r) => [
        md(r.key), fmtInt(r.requests), fmtInt(r.errors), fmtPct(r.errorRate ?? 0), fmtInt(r.status5xx), md(fmtCounts(r.flags), 120)
      ]), new Set([1, 2, 3, 4]))))
  } else {
    out.push('', '## Who to page', '')
    out.push(...table(['Side', 'Errors', 'Share'], s.sides.map((x) => [x.side, fmtInt(x.errors), fmtPct(x.share)]), new Set([1, 2])))
    out.push('', '## Errors by category', '')
    out.push(...table(['Category', 'Errors', 'Share'], s.categories.map((x) => [md(x.category), fmtInt(x.errors), fmtPct(x.share)]), new Set([1, 2])))
    out.push('', '## By response source', '')
    out.push(...table(['Source', 'Requests', 'Errors'], s.responseSources.map((x) => [md(x.source), fmtInt(x.requests), fmtInt(x.errors)]), new Set([1, 2])))

    out.push('', '## Top flags', '')
    if (s.flags.length === 0) out.push('No flagged responses.')
    else {
      out.push(...table(['Flag', 'Count', 'Share', 'Side', 'Status', 'First seen', 'Last seen', 'APIs', 'Targets', 'First check'], s.flags.map((f) => [
        `**${md(f.code, 12)}**`,
        fmtInt(f.count), fmtPct(f.share), f.side, md(f.status), fmtTime(f.firstSeen), fmtTime(f.lastSeen),
        md(fmtCounts(f.apis), 120), md(fmtCounts(f.targets), 120), f.known ? md(f.check, 400) : 'unknown flag'
      ]), new Set([1, 2])))
      if (s.moreFlags > 0) out.push('', `And ${fmtInt(s.moreFlags)} more flags.`)
    }

    if (s.targets.length > 0) {
      out.push('', '## Top error targets', '')
      out.push(...table(['Target', 'Errors', 'Share', 'Flags', 'First seen', 'Last seen'], s.targets.map((x) => [
        md(x.target), fmtInt(x.errors), fmtPct(x.share), md(fmtCounts(x.flags), 120), fmtTime(x.firstSeen), fmtTime(x.lastSeen)
      ]), new Set([1, 2])))
    }

    const latencyRows: string[][] = []
    const ok = s.okLatency
    const okCount = Math.max(ok.upstream?.count ?? 0, ok.gateway?.count ?? 0)
    if (okCount > 0) latencyRows.push([`not errors (${fmtInt(okCount)})`, ...fmtLatency(ok.upstream), ...fmtLatency(ok.gateway)])
    for (const f of s.flags) latencyRows.push([`${md(f.code, 12)} (${fmtInt(f.count)})`, ...fmtLatency(f.latency.upstream), ...fmtLatency(f.latency.gateway)])
    if (latencyRows.length > 0) {
      out.push('', '## Latency (ms)', '')
      out.push(...table(['', 'Upstream p50', 'p90', 'p99', 'Gateway p50', 'p90', 'p99'], latencyRows, new Set([1, 2, 3, 4, 5, 6])))
    }
    out.push(...timeline(s))
    if (spansMonths(s)) {
      out.push('', '## Errors by month and source', '')
      out.push(...table(['Month', 'Requests', 'Errors', 'Error rate', 'Upstream', 'Gateway', 'Client', 'By error source'], s.months.map((m) => [
        m.month, fmtInt(m.requests), fmtInt(m.errors), fmtPct(m.errorRate), fmtInt(m.sides.upstream), fmtInt(m.sides.gateway), fmtInt(m.sides.client), md(fmtCounts(m.errorSources), 200)
      ]), new Set([1, 2, 3, 4, 5, 6])))
    }
  }

  if (s.input.samples.length > 0) {
    out.push('', '## Malformed lines', '', `${fmtInt(s.input.malformed)} in all; the first ${s.input.samples.length}:`, '')
    for (const m of s.input.samples) out.push(`- ${md(m.input)}:${m.line}: ${m.problem}`)
  }
  if (s.input.errors.length > 0) {
    out.push('', '## Inputs not read to the end', '')
    for (const e of s.input.errors) out.push(`- ${md(e, 200)}`)
  }
  return out.join('\n') + '\n'
}
