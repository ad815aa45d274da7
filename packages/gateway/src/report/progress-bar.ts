/**
 * A one-line progress bar on stderr while a large input is read. Only on a terminal: piped or
 * redirected stderr gets nothing. It appears after SHOW_AFTER_MS, so small inputs never flash one.
 */
import type { ReadProgress } from './read-input.js'

export interface ProgressStream {
  write: (text: string) => unknown
  isTTY?: boolean
  columns?: number
}

const SHOW_AFTER_MS = 300
const REDRAW_MS = 100

function human (n: number): string {
  if (n >= 1e9) return (n / 1e9).toFixed(1) + 'G'
  if (n >= 1e6) return (n / 1e6).toFixed(1) + 'M'
  if (n >= 1e3) return (n / 1e3).toFixed(1) + 'k'
  return String(Math.round(n))
}

export class ProgressBar implements ReadProgress {
  private readonly started: number
  private lastDraw = 0
  private shown = false

  /** `total`: bytes to read, when known (files); undefined for stdin. */
  constructor (
    private readonly stream: ProgressStream,
    private readonly total: number | undefined,
    private readonly now: () => number = Date.now
  ) {
    this.started = now()
  }

  /** A progress bar for `stream`, or null when it is not a terminal. */
  static for (stream: ProgressStream, total: number | undefined): ProgressBar | null {
    return stream.isTTY === true ? new ProgressBar(stream, total) : null
  }

  update (bytes: number, lines: number): void {
    const now = this.now()
    const elapsed = now - this.started
    if (elapsed < SHOW_AFTER_MS || now - this.lastDraw < REDRAW_MS) return
    this.lastDraw = now
    this.shown = true
    const rate = `${human(lines / (elapsed / 1000))} lines/s`
    const width = Math.max(10, Math.min(40, (this.stream.columns ?? 80) - 50))
    let text
    if (this.total !== undefined && this.total > 0) {
      const done = Math.min(1, bytes / this.total)
      const filled = Math.round(done * width)
      text = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(Math.floor(done * 100)).padStart(3)}%  ${human(lines)} lines  ${rate}`
    } else {
      text = `${human(bytes)}B  ${human(lines)} lines  ${rate}`
    }
    this.stream.write(`\r\u001b[2Kreading ${text}`)
  }

  /** Erases the bar, if it was drawn. */
  done (): void {
    if (this.shown) this.stream.write('\r\u001b[2K')
    this.shown = false
  }
}
