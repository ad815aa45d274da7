/**
 * Calendar periods in UTC for quotas: a day, an ISO week (Monday 00:00 to the next Monday), a
 * month. A quota counter belongs to one period (its id is part of the key), so it resets exactly
 * at the boundary, whatever the store's own expiry does.
 */

export type CalendarPeriod = 'day' | 'week' | 'month'

export interface PeriodWindow {
  /** Stable id of the period, part of the store key: `d2026-11-23`, `w2026-11-16` (its Monday), `m2026-11`. */
  id: string
  /** First millisecond of the period (epoch ms, UTC). */
  start: number
  /** First millisecond of the next period. */
  end: number
}

const DAY = 86_400_000

export function isCalendarPeriod (value: unknown): value is CalendarPeriod {
  return value === 'day' || value === 'week' || value === 'month'
}

function pad (n: number): string {
  return n < 10 ? '0' + String(n) : String(n)
}

function dayId (t: number): string {
  const d = new Date(t)
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`
}

/** The period of `period` kind that contains the instant `now` (epoch ms). */
export function periodAt (period: CalendarPeriod, now: number): PeriodWindow {
  const dayStart = Math.floor(now / DAY) * DAY
  if (period === 'day') return { id: 'd' + dayId(dayStart), start: dayStart, end: dayStart + DAY }
  if (period === 'week') {
    // getUTCDay: Sunday 0 ... Saturday 6; ISO weeks start on Monday.
    const sinceMonday = (new Date(dayStart).getUTCDay() + 6) % 7
    const start = dayStart - sinceMonday * DAY
    return { id: 'w' + dayId(start), start, end: start + 7 * DAY }
  }
  const d = new Date(now)
  const year = d.getUTCFullYear()
  const month = d.getUTCMonth()
  return { id: `m${year}-${pad(month + 1)}`, start: Date.UTC(year, month, 1), end: Date.UTC(year, month + 1, 1) }
}
