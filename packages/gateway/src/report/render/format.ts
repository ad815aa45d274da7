/** Number, time and text formatting shared by the renderers. Locale-independent on purpose. */
import type { LatencyPercentiles } from '../latency-histogram.js'
import type { Count } from '../summary.js'

export function fmtInt (n: number): string {
  const s = String(Math.round(n))
  return s.replace(/\B(?=(\d{3})+(?!\d))/g, ',')
}

/** A 0..1 ratio as a percentage with one decimal ("<0.1%" for a small non-zero one). */
export function fmtPct (ratio: number): string {
  if (ratio > 0 && ratio < 0.001) return '<0.1%'
  return (ratio * 100).toFixed(1) + '%'
}

/** Milliseconds: three significant digits below 100, whole numbers above. */
export function fmtMs (ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return '-'
  if (ms >= 100) return fmtInt(ms)
  if (ms >= 10) return ms.toFixed(1)
  return ms.toFixed(2)
}

export function fmtLatency (p: LatencyPercentiles | null): [string, string, string] {
  return p === null ? ['-', '-', '-'] : [fmtMs(p.p50), fmtMs(p.p90), fmtMs(p.p99)]
}

/** ISO 8601 -> "2026-11-23 10:00:01" (UTC, no milliseconds). */
export function fmtTime (iso: string): string {
  return iso === '' ? '-' : iso.slice(0, 10) + ' ' + iso.slice(11, 19)
}

/** "10:00:01" when `iso` falls on the same day as `sameDayAs`, else the full time. */
export function fmtTimeAfter (iso: string, sameDayAs: string): string {
  return iso.slice(0, 10) === sameDayAs.slice(0, 10) ? iso.slice(11, 19) : fmtTime(iso)
}

export function fmtDuration (ms: number): string {
  const s = Math.round(ms / 1000)
  if (s < 60) return `${s}s`
  const m = Math.floor(s / 60)
  if (m < 60) return `${m}m ${s % 60}s`
  const h = Math.floor(m / 60)
  if (h < 48) return `${h}h ${m % 60}m`
  return `${Math.floor(h / 24)}d ${h % 24}h`
}

// C0 and C1 controls (ANSI escapes start with ESC), and the bidirectional overrides that can make
// text read differently from what it is.
// eslint-disable-next-line no-control-regex
const UNSAFE_FOR_TERMINAL = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g

/**
 * Text from a log made safe for a terminal: control characters shown as U+FFFD (a log line
 * cannot move the cursor or recolour the screen), cut to `max` characters.
 */
export function cleanText (text: string, max = Infinity): string {
  const clean = text.replace(UNSAFE_FOR_TERMINAL, '\ufffd')
  return clean.length > max ? clean.slice(0, Math.max(1, max - 1)) + '…' : clean
}

/** "Payments 120, Orders 3". */
export function fmtCounts (counts: Count[], clean: (s: string) => string = (s) => s): string {
  return counts.map((c) => `${clean(c.key)} ${fmtInt(c.count)}`).join(', ')
}

/** Columns padded to their widest cell; `right` lists the right-aligned columns. */
export function alignTable (rows: string[][], right: ReadonlySet<number> = new Set()): string[] {
  const widths: number[] = []
  for (const row of rows) row.forEach((cell, i) => { widths[i] = Math.max(widths[i] ?? 0, [...cell].length) })
  return rows.map((row) => row.map((cell, i) => {
    const pad = widths[i] - [...cell].length
    if (i === row.length - 1 && !right.has(i)) return cell
    return right.has(i) ? ' '.repeat(pad) + cell : cell + ' '.repeat(pad)
  }).join('  ').trimEnd())
}

const SPARKS = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█']

/** One character per value, scaled to `max`; zero is a space, any non-zero value at least ▁. */
export function sparkline (values: readonly number[], max: number): string {
  let out = ''
  for (const v of values) {
    if (v <= 0 || max <= 0) out += ' '
    else out += SPARKS[Math.min(SPARKS.length - 1, Math.floor((v / max) * (SPARKS.length - 1) + 0.5))]
  }
  return out
}

/** A horizontal bar of `width` cells for a 0..1 ratio; non-zero is at least one cell. */
export function bar (ratio: number, width: number): string {
  const cells = ratio > 0 ? Math.max(1, Math.round(ratio * width)) : 0
  return '█'.repeat(cells)
}
