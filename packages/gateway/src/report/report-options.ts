/** `faultline report` options: from the command line's strings to checked values. */
import { DIMENSIONS, type Dimension } from './aggregate.js'
import { STDIN } from './read-input.js'

export const FORMATS = ['table', 'md', 'csv', 'json', 'html'] as const
export type ReportFormat = typeof FORMATS[number]

export interface ReportOptions {
  /** Files, `-` for stdin; none: stdin. */
  inputs: string[]
  /** ms since the epoch, inclusive. */
  since?: number
  /** ms since the epoch, exclusive. */
  until?: number
  apis?: string[]
  by?: Dimension
  format: ReportFormat
  /** Write the report here instead of stdout. */
  out?: string
  /** Rows in the flag, target and API tables. */
  top: number
}

export interface ReportArgs {
  since?: string
  until?: string
  api?: string[]
  by?: string
  format?: string
  out?: string
  top?: string
}

/** A bad option value: the CLI prints it as a usage error (exit code 2). */
export class ReportUsageError extends Error {}

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }
const DATE_TIME = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d{1,3})?)?)(Z|[+-]\d{2}:?\d{2})?$/

/**
 * A point in time for --since/--until. Accepts `2026-11` (a month), `2026-11-23` (a day),
 * `2026-11-23T10:00[:00][Z|+02:00]` (no zone: UTC), epoch milliseconds, or a duration before
 * `now`: `90s`, `15m`, `2h`, `7d`, `2w`.
 */
export function parseTime (option: string, value: string, now: number): number {
  const v = value.trim()
  let ms = NaN
  let m: RegExpExecArray | null
  if ((m = /^(\d+)([smhdw])$/.exec(v)) !== null) ms = now - Number(m[1]) * UNIT_MS[m[2]]
  else if ((m = /^(\d{4})-(\d{2})$/.exec(v)) !== null) {
    const month = Number(m[2])
    if (month >= 1 && month <= 12) ms = Date.UTC(Number(m[1]), month - 1, 1)
  } else if (/^\d{4}-\d{2}-\d{2}$/.test(v)) ms = Date.parse(v + 'T00:00:00Z')
  else if ((m = DATE_TIME.exec(v)) !== null) ms = Date.parse(`${m[1]}T${m[2]}${m[3] ?? 'Z'}`)
  else if (/^\d{10,16}$/.test(v)) ms = Number(v)
  if (!Number.isFinite(ms)) {
    throw new ReportUsageError(`--${option}: not a time (got "${value}"); use 2026-11-23, 2026-11-23T10:00Z, 2026-11, epoch milliseconds, or a duration such as 2h`)
  }
  return ms
}

function isFormat (value: string): value is ReportFormat {
  return (FORMATS as readonly string[]).includes(value)
}

function isDimension (value: string): value is Dimension {
  return (DIMENSIONS as readonly string[]).includes(value)
}

function formatFromFile (file: string): ReportFormat | undefined {
  const ext = /\.([a-z]+)$/i.exec(file)?.[1]?.toLowerCase()
  switch (ext) {
    case 'html': case 'htm': return 'html'
    case 'md': case 'markdown': return 'md'
    case 'csv': return 'csv'
    case 'json': return 'json'
    default: return undefined
  }
}

export function parseReportOptions (args: ReportArgs, positionals: string[], now = Date.now()): ReportOptions {
  if (positionals.filter((p) => p === STDIN).length > 1) throw new ReportUsageError('stdin ("-") can be read only once')
  let format: ReportFormat = 'table'
  if (args.format !== undefined) {
    if (!isFormat(args.format)) throw new ReportUsageError(`--format must be one of ${FORMATS.join(', ')} (got "${args.format}")`)
    format = args.format
  } else if (args.out !== undefined) {
    format = formatFromFile(args.out) ?? 'table'
  }
  let by: Dimension | undefined
  if (args.by !== undefined) {
    if (!isDimension(args.by)) throw new ReportUsageError(`--by must be one of ${DIMENSIONS.join(', ')} (got "${args.by}")`)
    by = args.by
  }
  // A CSV file is one table: the breakdown, by flag unless told otherwise.
  if (format === 'csv' && by === undefined) by = 'flag'
  let top = 10
  if (args.top !== undefined) {
    top = Number(args.top)
    if (!Number.isInteger(top) || top < 1 || top > 1000) throw new ReportUsageError(`--top must be an integer from 1 to 1000 (got "${args.top}")`)
  }
  if (args.out === '') throw new ReportUsageError('--out needs a file name')
  const options: ReportOptions = { inputs: positionals, format, top }
  if (args.since !== undefined) options.since = parseTime('since', args.since, now)
  if (args.until !== undefined) options.until = parseTime('until', args.until, now)
  if (options.since !== undefined && options.until !== undefined && options.since >= options.until) {
    throw new ReportUsageError('--since must be before --until')
  }
  if (args.api !== undefined && args.api.length > 0) options.apis = args.api
  if (by !== undefined) options.by = by
  if (args.out !== undefined) options.out = args.out
  return options
}
