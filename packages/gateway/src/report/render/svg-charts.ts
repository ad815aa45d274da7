/** Inline SVG charts for the HTML report: no script, no external resource, readable in print. */
import { describeWidth, meanUpstreamLatency, type TimelineData } from '../timeline.js'
import { fmtInt, fmtMs } from './format.js'
import { html, type SafeHtml } from './safe-html.js'

export const CATEGORY_COLOURS: Record<string, string> = {
  upstream: '#e8590c',
  gateway: '#7048e8',
  auth: '#1971c2',
  rate_limit: '#f08c00',
  client: '#2b8a3e',
  other: '#868e96'
}

export const SIDE_COLOURS: Record<string, string> = {
  upstream: '#e8590c',
  gateway: '#7048e8',
  client: '#2b8a3e'
}

export function colourOf (key: string, palette: Record<string, string>): string {
  return Object.hasOwn(palette, key) ? palette[key] : '#868e96'
}

/** Gridline fractions that land on whole numbers for an axis maximum from niceCeil. */
function gridFractions (max: number): number[] {
  const parts = max % 5 === 0 ? 5 : max % 4 === 0 ? 4 : max % 3 === 0 ? 3 : max % 2 === 0 ? 2 : 1
  return Array.from({ length: parts + 1 }, (_, i) => i / parts)
}

/** A round number at or above `n` (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 x 10^k), for an axis maximum. */
function niceCeil (n: number): number {
  if (n <= 0) return 1
  const p = 10 ** Math.floor(Math.log10(n))
  for (const m of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (Math.round(m * p * 1e6) / 1e6 >= n) return Math.round(m * p * 1e6) / 1e6
  return 10 * p
}

function tickLabel (ms: number, width: number, spanMs: number): string {
  const iso = new Date(ms).toISOString()
  if (width >= 86_400_000 || spanMs > 2 * 86_400_000) return iso.slice(5, 10) + (width < 86_400_000 ? ' ' + iso.slice(11, 16) : '')
  return iso.slice(11, 16)
}

export interface StackedSeries {
  key: string
  colour: string
}

/**
 * Errors per time bucket, stacked by category. `series` names the slots of `bucket.errors`.
 */
export function timelineChart (data: TimelineData, series: readonly StackedSeries[]): SafeHtml {
  const W = 960
  const H = 260
  const left = 52
  const right = 12
  const top = 14
  const bottom = 36
  const plotW = W - left - right
  const plotH = H - top - bottom
  const n = data.buckets.length
  const totals = data.buckets.map((b) => b.errors.reduce((a, v) => a + v, 0))
  const max = niceCeil(Math.max(0, ...totals))
  const step = plotW / Math.max(1, n)
  const barW = Math.max(1, step * 0.85)
  const y = (v: number): number => top + plotH - (v / max) * plotH
  const bars: SafeHtml[] = []
  data.buckets.forEach((b, i) => {
    let base = 0
    const x = left + i * step + (step - barW) / 2
    const when = new Date(b.start).toISOString().slice(0, 16).replace('T', ' ')
    series.forEach((s, k) => {
      const v = b.errors[k]
      if (v <= 0) return
      const y1 = y(base + v)
      const h = y(base) - y1
      base += v
      bars.push(html`<rect class="bar" x="${x.toFixed(2)}" y="${y1.toFixed(2)}" width="${barW.toFixed(2)}" height="${Math.max(0.5, h).toFixed(2)}" fill="${s.colour}"><title>${when} UTC: ${fmtInt(v)} ${s.key} errors (${fmtInt(b.requests)} requests)</title></rect>`)
    })
  })
  const grid: SafeHtml[] = []
  for (const f of gridFractions(max)) {
    const gy = y(max * f)
    grid.push(html`<line x1="${left}" x2="${W - right}" y1="${gy.toFixed(2)}" y2="${gy.toFixed(2)}" class="grid"/><text x="${left - 6}" y="${(gy + 4).toFixed(2)}" text-anchor="end" class="axis">${fmtInt(max * f)}</text>`)
  }
  const ticks: SafeHtml[] = []
  const spanMs = n > 0 ? data.buckets[n - 1].start - data.buckets[0].start : 0
  const every = Math.max(1, Math.ceil(n / 8))
  for (let i = 0; i < n; i += every) {
    const x = left + i * step + step / 2
    ticks.push(html`<text x="${x.toFixed(2)}" y="${H - bottom + 16}" text-anchor="middle" class="axis">${tickLabel(data.buckets[i].start, data.bucketMs, spanMs)}</text>`)
  }
  return html`<svg class="chart" viewBox="0 0 ${W} ${H}" role="img" aria-label="Errors per ${describeWidth(data.bucketMs)} by category" xmlns="http://www.w3.org/2000/svg">
${grid}${bars}${ticks}
<text x="${left}" y="${H - 4}" class="axis">UTC, one bar per ${describeWidth(data.bucketMs)}</text>
</svg>`
}

/**
 * Mean upstream latency per time bucket, as a line aligned with the timeline's bars: an upstream
 * slowing down shows here before (or while) its timeouts show up as URT.
 */
export function latencyLine (data: TimelineData): SafeHtml {
  const W = 960
  const H = 130
  const left = 52
  const right = 12
  const top = 12
  const bottom = 20
  const plotW = W - left - right
  const plotH = H - top - bottom
  const n = data.buckets.length
  const means = data.buckets.map(meanUpstreamLatency)
  const max = niceCeil(Math.max(0, ...means.map((m) => m ?? 0)))
  const step = plotW / Math.max(1, n)
  const points: string[] = []
  const dots: SafeHtml[] = []
  means.forEach((m, i) => {
    if (m === null) return
    const x = (left + i * step + step / 2).toFixed(2)
    const y = (top + plotH - (m / max) * plotH).toFixed(2)
    points.push(`${x},${y}`)
    const when = new Date(data.buckets[i].start).toISOString().slice(0, 16).replace('T', ' ')
    dots.push(html`<circle class="dot" cx="${x}" cy="${y}" r="2.2"><title>${when} UTC: mean upstream latency ${fmtMs(m)} ms</title></circle>`)
  })
  const grid: SafeHtml[] = []
  for (const f of gridFractions(max)) {
    const gy = top + plotH - f * plotH
    grid.push(html`<line x1="${left}" x2="${W - right}" y1="${gy.toFixed(2)}" y2="${gy.toFixed(2)}" class="grid"/><text x="${left - 6}" y="${(gy + 4).toFixed(2)}" text-anchor="end" class="axis">${max >= 10 ? fmtInt(max * f) : fmtMs(max * f)}</text>`)
  }
  return html`<svg class="chart" viewBox="0 0 ${W} ${H}" role="img" aria-label="Mean upstream latency per ${describeWidth(data.bucketMs)}" xmlns="http://www.w3.org/2000/svg">
${grid}<polyline class="latency" fill="none" stroke="#1c7ed6" stroke-width="1.6" points="${points.join(' ')}"/>${dots}
<text x="${left}" y="${H - 4}" class="axis">mean upstream latency (ms), same time axis</text>
</svg>`
}

/** One horizontal bar per row, its length the row's share of the largest. */
export function barChart (rows: ReadonlyArray<{ label: string, value: number, colour: string, note?: string }>): SafeHtml {
  const W = 460
  const rowH = 26
  const labelW = 110
  const valueW = 110
  const H = Math.max(1, rows.length) * rowH + 4
  const max = Math.max(1, ...rows.map((r) => r.value))
  const plotW = W - labelW - valueW
  const parts = rows.map((r, i) => {
    const y = i * rowH + 4
    const w = r.value > 0 ? Math.max(2, (r.value / max) * plotW) : 0
    return html`<text x="0" y="${y + 15}" class="label">${r.label}</text><rect x="${labelW}" y="${y + 3}" width="${w.toFixed(2)}" height="${rowH - 10}" fill="${r.colour}" rx="2"/><text x="${labelW + w + 6}" y="${y + 15}" class="value">${fmtInt(r.value)}${r.note !== undefined ? ' ' + r.note : ''}</text>`
  })
  return html`<svg class="bars" viewBox="0 0 ${W} ${H}" role="img" xmlns="http://www.w3.org/2000/svg">${parts}</svg>`
}

/** One vertical bar per period (months), stacked by side. */
export function stackedColumns (columns: ReadonlyArray<{ label: string, values: number[] }>, series: readonly StackedSeries[]): SafeHtml {
  const W = 960
  const H = 220
  const left = 52
  const bottom = 30
  const top = 12
  const plotH = H - top - bottom
  const plotW = W - left - 12
  const max = niceCeil(Math.max(0, ...columns.map((c) => c.values.reduce((a, v) => a + v, 0))))
  const step = plotW / Math.max(1, columns.length)
  const barW = Math.min(60, step * 0.7)
  const parts: SafeHtml[] = []
  columns.forEach((c, i) => {
    const x = left + i * step + (step - barW) / 2
    let base = 0
    series.forEach((s, k) => {
      const v = c.values[k]
      if (v <= 0) return
      const y1 = top + plotH - ((base + v) / max) * plotH
      const h = (v / max) * plotH
      base += v
      parts.push(html`<rect x="${x.toFixed(2)}" y="${y1.toFixed(2)}" width="${barW.toFixed(2)}" height="${Math.max(0.5, h).toFixed(2)}" fill="${s.colour}"><title>${c.label}: ${fmtInt(v)} ${s.key}</title></rect>`)
    })
    parts.push(html`<text x="${(x + barW / 2).toFixed(2)}" y="${H - bottom + 16}" text-anchor="middle" class="axis">${c.label}</text>`)
  })
  for (const f of gridFractions(max)) {
    const gy = top + plotH - f * plotH
    parts.push(html`<line x1="${left}" x2="${W - 12}" y1="${gy.toFixed(2)}" y2="${gy.toFixed(2)}" class="grid"/><text x="${left - 6}" y="${(gy + 4).toFixed(2)}" text-anchor="end" class="axis">${fmtInt(max * f)}</text>`)
  }
  return html`<svg class="chart" viewBox="0 0 ${W} ${H}" role="img" aria-label="Errors by month" xmlns="http://www.w3.org/2000/svg">${parts}</svg>`
}

export function legend (series: readonly StackedSeries[]): SafeHtml {
  return html`<div class="legend">${series.map((s) => html`<span><i style="background:${s.colour}"></i>${s.key}</span>`)}</div>`
}
