/**
 * The breakdown table (--by, `flag` by default) as CSV (RFC 4180), one row per group. Text from a
 * log is quoted, and a cell that a spreadsheet would run as a formula gets a leading quote.
 */
import { flags } from '@faultline/core'
import { sideOf } from '../side.js'
import type { Count, ReportSummary } from '../summary.js'

/** One CSV cell. Numbers as they are; text quoted when needed and defused when formula-like. */
export function csvCell (value: string | number | null): string {
  if (value === null) return ''
  if (typeof value === 'number') return String(value)
  let text = value
  if (/^[=+\-@\t\r]/.test(text)) text = "'" + text
  return /[",\r\n]|^\s|\s$/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text
}

function countsCell (counts: Count[]): string {
  return counts.map((c) => `${c.key} ${c.count}`).join('; ')
}

export function renderCsv (s: ReportSummary): string {
  const b = s.breakdown
  if (b === null) throw new Error('the CSV report needs a breakdown')
  const isFlag = b.by === 'flag'
  const header = [b.by, 'requests', 'errors', 'error_rate', 'share_of_errors', 'status_5xx', 'first_seen', 'last_seen', 'flags']
  if (isFlag) header.push('category', 'side', 'first_check')
  const lines = [header.join(',')]
  for (const r of b.rows) {
    const row: Array<string | number | null> = [r.key, r.requests, r.errors, r.errorRate, r.share, r.status5xx, r.firstSeen, r.lastSeen, countsCell(r.flags)]
    if (isFlag) {
      const def = Object.hasOwn(flags, r.key) ? flags[r.key] : undefined
      row.push(def?.category ?? '', def !== undefined ? sideOf(r.key, def.category, 0) : '', def?.check ?? '')
    }
    lines.push(row.map(csvCell).join(','))
  }
  return lines.join('\r\n') + '\r\n'
}
