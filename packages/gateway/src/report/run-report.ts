/**
 * `faultline report`: reads the inputs (streaming), builds the summary, renders it in the chosen
 * format to stdout or --out. Exit code 0, or 1 when an input could not be read to the end (the
 * report still covers what was read).
 */
import { writeFile } from 'node:fs/promises'
import type { Readable } from 'node:stream'
import { ReportAggregate } from './aggregate.js'
import { ProgressBar, type ProgressStream } from './progress-bar.js'
import { inputSizes, readInputs, STDIN } from './read-input.js'
import type { ReportFormat, ReportOptions } from './report-options.js'
import { ReportUsageError } from './report-options.js'
import { buildSummary, type ReportSummary } from './summary.js'
import { renderCsv } from './render/csv.js'
import { renderHtml } from './render/html.js'
import { renderMarkdown } from './render/markdown.js'
import { renderText } from './render/text.js'

export interface ReportIo {
  stdout: { write: (text: string) => unknown, columns?: number }
  /** Progress bar (on a terminal only). */
  stderr: ProgressStream
  /** Read for `-` (and when no file is given). Default `process.stdin`. */
  stdin?: Readable & { isTTY?: boolean }
  /** The time the report is generated at. */
  now?: () => Date
}

export function renderReport (summary: ReportSummary, format: ReportFormat, width?: number): string {
  switch (format) {
    case 'json': return JSON.stringify(summary, null, 2) + '\n'
    case 'csv': return renderCsv(summary)
    case 'md': return renderMarkdown(summary)
    case 'html': return renderHtml(summary)
    default: return renderText(summary, width === undefined ? {} : { width })
  }
}

/** Reads the inputs and builds the summary (no rendering). */
export async function summarise (options: ReportOptions, io: Pick<ReportIo, 'stderr' | 'stdin' | 'now'>): Promise<ReportSummary> {
  const inputs = options.inputs.length > 0 ? options.inputs : [STDIN]
  const stdin = io.stdin ?? process.stdin
  if (options.inputs.length === 0 && stdin.isTTY === true) {
    throw new ReportUsageError('no input: give access-log files, or pipe one into stdin')
  }
  const total = await inputSizes(inputs)
  const agg = new ReportAggregate({ since: options.since, until: options.until, apis: new Set(options.apis ?? []), by: options.by })
  const progress = ProgressBar.for(io.stderr, total)
  let tally
  try {
    tally = await readInputs(inputs, agg, { stdin, progress: progress ?? undefined })
  } finally {
    progress?.done()
  }
  return buildSummary(agg, tally, {
    top: options.top,
    since: options.since,
    until: options.until,
    apis: options.apis,
    now: io.now?.()
  })
}

export async function runReport (options: ReportOptions, io: ReportIo): Promise<number> {
  const summary = await summarise(options, io)
  const text = renderReport(summary, options.format, io.stdout.columns)
  if (options.out !== undefined) await writeFile(options.out, text)
  else io.stdout.write(text)
  return summary.input.errors.length > 0 ? 1 : 0
}
