/**
 * The report as one self-contained HTML file: inline CSS and SVG, no script, nothing fetched
 * (a Content-Security-Policy says so), print styles for a PDF. Every value from a log is escaped
 * by the `html` template.
 */
import { isErrorDimension } from '../aggregate.js'
import { spansMonths, type FlagSummary, type ReportSummary } from '../summary.js'
import { regroup, describeWidth } from '../timeline.js'
import { fmtCounts, fmtDuration, fmtInt, fmtLatency, fmtPct, fmtTime, fmtTimeAfter } from './format.js'
import { html, SafeHtml } from './safe-html.js'
import { barChart, CATEGORY_COLOURS, colourOf, latencyLine, legend, SIDE_COLOURS, stackedColumns, timelineChart } from './svg-charts.js'

/** Error sources shown as their own column in the monthly table; the rest are summed. */
const MONTH_SOURCE_COLUMNS = 8

const STYLE = `
:root { --fg: #212529; --muted: #6c757d; --line: #dee2e6; --bg: #f8f9fa; }
* { box-sizing: border-box; -webkit-print-color-adjust: exact; print-color-adjust: exact; }
body { margin: 0; background: var(--bg); color: var(--fg); font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1120px; margin: 0 auto; padding: 24px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 0 0 12px; }
.meta { color: var(--muted); margin: 0 0 16px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 16px 18px; margin: 0 0 16px; }
.kpis { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 12px; margin: 0 0 16px; }
.kpi { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; }
.kpi b { display: block; font-size: 22px; }
.kpi span { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.two { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 16px; }
.two + .two { margin-top: 16px; }
table { width: 100%; border-collapse: collapse; font-size: 13px; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
td.list { overflow-wrap: anywhere; min-width: 90px; }
td.nw { white-space: nowrap; }
td.check { min-width: 220px; }
th { font-size: 11px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.t { white-space: nowrap; font-variant-numeric: tabular-nums; }
.flag { display: inline-block; font: 600 12px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; color: #fff; border-radius: 4px; padding: 1px 6px; }
.hint { color: var(--fg); }
.msg { color: var(--muted); font-size: 12px; }
.chart { width: 100%; height: auto; display: block; }
.bars { width: 100%; max-width: 460px; height: auto; display: block; }
svg text { font: 12px system-ui, sans-serif; fill: #495057; }
svg .axis { font-size: 11px; fill: var(--muted); }
svg .grid { stroke: var(--line); stroke-width: 1; }
svg .dot { fill: #1c7ed6; }
.legend { display: flex; flex-wrap: wrap; gap: 14px; margin: 8px 0 0; font-size: 12px; color: var(--muted); }
.legend i { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 5px; vertical-align: -1px; }
.note { color: var(--muted); font-size: 12px; margin: 8px 0 0; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
@page { size: A4; margin: 12mm; }
@media print {
  body { background: #fff; font-size: 11px; }
  main { max-width: none; padding: 0; }
  section, .kpi { break-inside: avoid; border-color: #ccc; }
  section.long { break-inside: auto; }
  thead { display: table-header-group; }
  tr { break-inside: avoid; }
}
`

function flagBadge (f: FlagSummary): SafeHtml {
  return html`<span class="flag" style="background:${colourOf(f.category, CATEGORY_COLOURS)}">${f.code}</span>`
}

function header (s: ReportSummary): SafeHtml {
  const t = s.totals
  const span = s.span === null
    ? 'no requests'
    : `${fmtTime(s.span.first)} to ${fmtTimeAfter(s.span.last, s.span.first)} UTC (${fmtDuration(Date.parse(s.span.last) - Date.parse(s.span.first))})`
  const filters: string[] = []
  if (s.filters.since !== undefined) filters.push(`since ${fmtTime(s.filters.since)}`)
  if (s.filters.until !== undefined) filters.push(`until ${fmtTime(s.filters.until)}`)
  if (s.filters.apis !== undefined) filters.push(`API ${s.filters.apis.join(', ')}`)
  return html`<header>
<h1>Faultline report</h1>
<p class="meta">${span} &middot; ${s.input.inputs.join(', ')}${filters.length > 0 ? ' · ' + filters.join('; ') : ''} &middot; generated ${fmtTime(s.generatedAt)} UTC</p>
<div class="kpis">
<div class="kpi" id="kpi-requests"><span>Requests</span><b>${fmtInt(t.requests)}</b></div>
<div class="kpi" id="kpi-errors"><span>Errors</span><b>${fmtInt(t.errors)}</b></div>
<div class="kpi" id="kpi-rate"><span>Error rate</span><b>${fmtPct(t.errorRate)}</b></div>
<div class="kpi" id="kpi-5xx"><span>5xx sent</span><b>${fmtInt(t.status5xx)}</b></div>
<div class="kpi" id="kpi-skipped"><span>Lines skipped</span><b>${fmtInt(s.input.malformed + s.input.notAccess)}</b></div>
</div>
</header>`
}

function sources (s: ReportSummary): SafeHtml {
  const sides = barChart(s.sides.map((x) => ({ label: x.side, value: x.errors, colour: colourOf(x.side, SIDE_COLOURS), note: `(${fmtPct(x.share)})` })))
  const cats = barChart(s.categories.map((x) => ({ label: x.category, value: x.errors, colour: colourOf(x.category, CATEGORY_COLOURS), note: `(${fmtPct(x.share)})` })))
  return html`<section id="sources"><div class="two">
<div><h2>Who to page: errors by side</h2>${sides}
<p class="note">upstream: the upstream failed or answered 5xx; gateway: the gateway or a service it depends on (auth service, rate-limit store); client: the request was refused on its merits.</p></div>
<div><h2>Errors by category</h2>${s.categories.length > 0 ? cats : html`<p class="note">No errors.</p>`}</div>
</div>
<div class="two">
<div><h2>By response source</h2><table id="response-sources"><thead><tr><th>Source</th><th class="n">Requests</th><th class="n">Errors</th></tr></thead><tbody>
${s.responseSources.map((x) => html`<tr><td>${x.source}</td><td class="n">${fmtInt(x.requests)}</td><td class="n">${fmtInt(x.errors)}</td></tr>`)}
</tbody></table></div>
<div><h2>By error source</h2><table id="error-sources"><thead><tr><th>Error source</th><th class="n">Errors</th><th class="n">Share</th></tr></thead><tbody>
${s.errorSources.map((x) => html`<tr><td>${x.source}</td><td class="n">${fmtInt(x.errors)}</td><td class="n">${fmtPct(x.share)}</td></tr>`)}
</tbody></table></div>
</div></section>`
}

function timeline (s: ReportSummary): SafeHtml {
  const data = regroup(s.timeline, 120)
  if (data.buckets.length === 0) return html``
  const series = s.timeline.categories.map((key) => ({ key, colour: colourOf(key, CATEGORY_COLOURS) }))
  const used = series.filter((_, i) => data.buckets.some((b) => b.errors[i] > 0))
  const reachedUpstream = data.buckets.some((b) => b.upstreamLatencyCount > 0)
  return html`<section id="timeline"><h2>Errors per ${describeWidth(data.bucketMs)} by category</h2>
${timelineChart(data, series)}${legend(used.length > 0 ? used : series)}
${reachedUpstream ? latencyLine(data) : ''}</section>`
}

function flagTable (s: ReportSummary): SafeHtml {
  if (s.flags.length === 0) return html`<section id="flags"><h2>Flags</h2><p class="note">No flagged responses.</p></section>`
  const rows = s.flags.map((f) => html`<tr data-flag="${f.code}">
<td class="nw">${flagBadge(f)}</td><td class="n">${fmtInt(f.count)}</td><td class="n">${fmtPct(f.share)}</td><td class="nw">${f.side}</td><td class="nw">${f.status}</td>
<td class="t">${fmtTime(f.firstSeen)}<br>${fmtTime(f.lastSeen)}</td>
<td class="list">${fmtCounts(f.apis)}</td><td class="list">${fmtCounts(f.targets)}</td>
<td class="check"><div class="hint">${f.known ? f.check : 'Unknown flag: not in this version\'s catalogue.'}</div>${f.message !== '' ? html`<div class="msg">Clients read: “${f.message}”</div>` : ''}</td>
</tr>`)
  return html`<section id="flags" class="long"><h2>Flags</h2><table><thead><tr>
<th>Flag</th><th class="n">Count</th><th class="n">Share</th><th>Side</th><th>Status</th><th>First / last seen (UTC)</th><th>APIs</th><th>Targets</th><th>First check</th>
</tr></thead><tbody>${rows}</tbody></table>
${s.moreFlags > 0 ? html`<p class="note">And ${fmtInt(s.moreFlags)} more flags.</p>` : ''}</section>`
}

function latencyTable (s: ReportSummary): SafeHtml {
  const ok = s.okLatency
  const okCount = Math.max(ok.upstream?.count ?? 0, ok.gateway?.count ?? 0)
  const row = (label: SafeHtml | string, up: typeof ok.upstream, gw: typeof ok.gateway, count: number): SafeHtml => {
    const [u50, u90, u99] = fmtLatency(up)
    const [g50, g90, g99] = fmtLatency(gw)
    return html`<tr><td>${label}</td><td class="n">${fmtInt(count)}</td><td class="n">${u50}</td><td class="n">${u90}</td><td class="n">${u99}</td><td class="n">${g50}</td><td class="n">${g90}</td><td class="n">${g99}</td></tr>`
  }
  const rows: SafeHtml[] = []
  if (okCount > 0) rows.push(row('not errors (baseline)', ok.upstream, ok.gateway, okCount))
  for (const f of s.flags) rows.push(row(flagBadge(f), f.latency.upstream, f.latency.gateway, f.count))
  if (rows.length === 0) return html``
  return html`<section id="latency"><h2>Latency (ms): upstream vs gateway</h2><table><thead><tr>
<th></th><th class="n">Requests</th><th class="n">Upstream p50</th><th class="n">p90</th><th class="n">p99</th><th class="n">Gateway p50</th><th class="n">p90</th><th class="n">p99</th>
</tr></thead><tbody>${rows}</tbody></table>
<p class="note">Upstream: time spent waiting on the upstream (rising with URT: the backend is degrading). Gateway: the rest (near zero upstream time with RLT or auth flags: refused at the gateway).</p></section>`
}

function targetTable (s: ReportSummary): SafeHtml {
  if (s.targets.length === 0) return html``
  return html`<section id="targets"><h2>Top error targets</h2><table><thead><tr>
<th>Target</th><th class="n">Errors</th><th class="n">Share</th><th>Flags</th><th>APIs</th><th>First / last seen (UTC)</th>
</tr></thead><tbody>${s.targets.map((t) => html`<tr><td class="list"><code>${t.target}</code></td><td class="n">${fmtInt(t.errors)}</td><td class="n">${fmtPct(t.share)}</td>
<td class="list">${fmtCounts(t.flags)}</td><td class="list">${fmtCounts(t.apis)}</td><td class="t">${fmtTime(t.firstSeen)}<br>${fmtTime(t.lastSeen)}</td></tr>`)}</tbody></table>
${s.moreTargets > 0 ? html`<p class="note">And ${fmtInt(s.moreTargets)} more targets.</p>` : ''}</section>`
}

function apiTable (s: ReportSummary): SafeHtml {
  if (s.apis.length === 0) return html``
  return html`<section id="apis"><h2>APIs</h2><table><thead><tr>
<th>API</th><th class="n">Requests</th><th class="n">Errors</th><th class="n">Error rate</th><th>Flags</th>
</tr></thead><tbody>${s.apis.map((a) => html`<tr><td class="list">${a.api}</td><td class="n">${fmtInt(a.requests)}</td><td class="n">${fmtInt(a.errors)}</td><td class="n">${fmtPct(a.errorRate)}</td><td>${fmtCounts(a.flags)}</td></tr>`)}</tbody></table></section>`
}

/** Shown when the logs cover a month or more, or more than one calendar month. */
function monthly (s: ReportSummary): SafeHtml {
  if (!spansMonths(s)) return html``
  const totals = new Map<string, number>()
  for (const m of s.months) for (const c of m.errorSources) totals.set(c.key, (totals.get(c.key) ?? 0) + c.count)
  const columns = [...totals].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, MONTH_SOURCE_COLUMNS).map(([k]) => k)
  const hasRest = totals.size > columns.length
  const sideSeries = (['upstream', 'gateway', 'client'] as const).map((key) => ({ key, colour: SIDE_COLOURS[key] }))
  const chart = stackedColumns(s.months.map((m) => ({ label: m.month, values: [m.sides.upstream, m.sides.gateway, m.sides.client] })), sideSeries)
  const rows = s.months.map((m) => {
    const by = new Map(m.errorSources.map((c) => [c.key, c.count]))
    const rest = m.errorSources.filter((c) => !columns.includes(c.key)).reduce((a, c) => a + c.count, 0)
    return html`<tr><td class="t">${m.month}</td><td class="n">${fmtInt(m.requests)}</td><td class="n">${fmtInt(m.errors)}</td><td class="n">${fmtPct(m.errorRate)}</td>
<td class="n">${fmtInt(m.sides.upstream)}</td><td class="n">${fmtInt(m.sides.gateway)}</td><td class="n">${fmtInt(m.sides.client)}</td>
${columns.map((c) => html`<td class="n">${fmtInt(by.get(c) ?? 0)}</td>`)}${hasRest ? html`<td class="n">${fmtInt(rest)}</td>` : ''}</tr>`
  })
  return html`<section id="monthly" class="long"><h2>Monthly breakdown by error source</h2>${chart}${legend(sideSeries)}
<table><thead><tr><th>Month</th><th class="n">Requests</th><th class="n">Errors</th><th class="n">Error rate</th><th class="n">Upstream</th><th class="n">Gateway</th><th class="n">Client</th>
${columns.map((c) => html`<th class="n">${c}</th>`)}${hasRest ? html`<th class="n">Other sources</th>` : ''}</tr></thead><tbody>${rows}</tbody></table>
<p class="note">Months in UTC. Upstream / gateway / client: who owned the errors; then errors by <code>error_source</code>.</p></section>`
}

function breakdown (s: ReportSummary): SafeHtml {
  const b = s.breakdown
  if (b === null) return html``
  const errorDim = isErrorDimension(b.by)
  return html`<section id="breakdown" class="long"><h2>Breakdown by ${b.by}</h2><table><thead><tr><th>${b.by}</th>
${errorDim ? '' : html`<th class="n">Requests</th>`}<th class="n">Errors</th><th class="n">${errorDim ? 'Share' : 'Error rate'}</th><th class="n">5xx</th><th>Flags</th><th>First / last seen (UTC)</th></tr></thead><tbody>
${b.rows.map((r) => html`<tr><td>${r.key}</td>${errorDim ? '' : html`<td class="n">${fmtInt(r.requests)}</td>`}<td class="n">${fmtInt(r.errors)}</td>
<td class="n">${fmtPct(errorDim ? r.share : r.errorRate ?? 0)}</td><td class="n">${fmtInt(r.status5xx)}</td><td>${fmtCounts(r.flags)}</td><td class="t">${fmtTime(r.firstSeen)}<br>${fmtTime(r.lastSeen)}</td></tr>`)}
</tbody></table></section>`
}

function inputSection (s: ReportSummary): SafeHtml {
  const i = s.input
  return html`<section id="input"><h2>Input</h2>
<p>${fmtInt(i.lines)} lines read: ${fmtInt(i.accessLines)} access lines (${fmtInt(i.filtered)} outside the filters), ${fmtInt(i.notAccess)} not access lines, ${fmtInt(i.malformed)} malformed.</p>
${i.samples.length > 0 ? html`<table id="malformed"><thead><tr><th>Input</th><th class="n">Line</th><th>Problem</th></tr></thead><tbody>${i.samples.map((m) => html`<tr><td>${m.input}</td><td class="n">${m.line}</td><td>${m.problem}</td></tr>`)}</tbody></table>` : ''}
${i.errors.length > 0 ? html`<p><b>Not read to the end:</b></p><ul>${i.errors.map((e) => html`<li>${e}</li>`)}</ul>` : ''}
</section>`
}

export function renderHtml (s: ReportSummary): string {
  const page = html`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>Faultline report${s.span !== null ? ' ' + s.span.first.slice(0, 10) : ''}</title>
<style>${new SafeHtml(STYLE)}</style>
</head>
<body><main>
${header(s)}
${timeline(s)}
${sources(s)}
${flagTable(s)}
${latencyTable(s)}
${targetTable(s)}
${apiTable(s)}
${monthly(s)}
${breakdown(s)}
${inputSection(s)}
</main></body>
</html>
`
  return page.html
}
