import { Writable } from 'node:stream'

export interface AccessLine {
  msg: string
  level: number
  time: number
  request_id: string
  status: number
  [field: string]: unknown
}

/** A destination that keeps every JSON line written to it, parsed, and the text as written. */
export class LogCapture extends Writable {
  readonly lines: AccessLine[] = []
  /** Everything written, byte for byte (as UTF-8 text). */
  text = ''
  private waiters: Array<{ n: number, resolve: () => void }> = []

  override _write (chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error) => void): void {
    const written = chunk.toString('utf8')
    this.text += written
    for (const text of written.split('\n')) {
      if (text.trim() !== '') this.lines.push(JSON.parse(text) as AccessLine)
    }
    this.waiters = this.waiters.filter((w) => {
      if (this.lines.length >= w.n) { w.resolve(); return false }
      return true
    })
    cb()
  }

  /** Resolves once `n` lines were written (the line is written when the response closes). */
  async waitFor (n: number, timeoutMs = 5000): Promise<AccessLine[]> {
    if (this.lines.length < n) {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`expected ${n} access lines, got ${this.lines.length}`)), timeoutMs)
        this.waiters.push({ n, resolve: () => { clearTimeout(timer); resolve() } })
      })
    }
    return this.lines
  }

  /** Waits for the next line after the ones already seen. */
  async next (timeoutMs = 5000): Promise<AccessLine> {
    const n = this.lines.length + 1
    await this.waitFor(n, timeoutMs)
    return this.lines[n - 1]
  }
}
