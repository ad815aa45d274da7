// Headless Chromium driven over the DevTools protocol (a small client over `ws`): open a page,
// collect its console errors and exceptions, evaluate, screenshot, print to PDF.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import WebSocket from 'ws'

/** The Chromium binary: $CHROMIUM_PATH, or the first of the usual names on PATH. */
export function findChromium (): string | undefined {
  const candidates = [process.env.CHROMIUM_PATH, 'chromium', 'chromium-browser', 'google-chrome']
  for (const name of candidates) {
    if (name === undefined || name === '') continue
    if (spawnSync('sh', ['-c', `command -v "${name}"`], { stdio: 'ignore' }).status === 0) return name
  }
  return undefined
}

interface Pending {
  resolve: (value: Record<string, unknown>) => void
  reject: (err: Error) => void
}

export interface PageProblem {
  kind: string
  text: string
}

export class Browser {
  private nextId = 0
  private readonly pending = new Map<number, Pending>()
  private readonly waiters: Array<{ method: string, resolve: (params: Record<string, unknown>) => void }> = []
  /** Console errors, uncaught exceptions and error log entries of the page. */
  readonly problems: PageProblem[] = []
  private sessionId: string | undefined

  private constructor (private readonly proc: ChildProcess, private readonly ws: WebSocket, private readonly profile: string) {
    ws.on('message', (data: Buffer) => this.onMessage(JSON.parse(data.toString('utf8')) as Record<string, unknown>))
  }

  static async launch (binary: string, timeoutMs = 20_000): Promise<Browser> {
    const profile = mkdtempSync(join(tmpdir(), 'faultline-chromium-'))
    // A process group of its own (detached), so that close() can end its helper processes too.
    const proc = spawn(binary, [
      '--headless', '--disable-gpu', '--no-sandbox', '--no-first-run', '--no-default-browser-check',
      '--disable-extensions', '--disable-background-networking', '--remote-debugging-port=0',
      `--user-data-dir=${profile}`, 'about:blank'
    ], { stdio: ['ignore', 'ignore', 'pipe'], detached: true })
    const url = await new Promise<string>((resolve, reject) => {
      let seen = ''
      const timer = setTimeout(() => reject(new Error(`chromium did not start in ${timeoutMs} ms: ${seen.slice(-500)}`)), timeoutMs)
      proc.once('error', (err) => { clearTimeout(timer); reject(err) })
      proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(`chromium exited (${String(code)}): ${seen.slice(-500)}`)) })
      proc.stderr?.on('data', (chunk: Buffer) => {
        seen += chunk.toString('utf8')
        const m = /DevTools listening on (ws:\/\/\S+)/.exec(seen)
        if (m !== null) {
          clearTimeout(timer)
          resolve(m[1])
        }
      })
    })
    proc.removeAllListeners('exit')
    const ws = new WebSocket(url, { perMessageDeflate: false })
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve())
      ws.once('error', reject)
    })
    const browser = new Browser(proc, ws, profile)
    const { targetId } = await browser.send('Target.createTarget', { url: 'about:blank' })
    const { sessionId } = await browser.send('Target.attachToTarget', { targetId, flatten: true })
    browser.sessionId = sessionId as string
    await browser.send('Runtime.enable')
    await browser.send('Log.enable')
    await browser.send('Page.enable')
    return browser
  }

  private onMessage (msg: Record<string, unknown>): void {
    if (typeof msg.id === 'number') {
      const p = this.pending.get(msg.id)
      if (p === undefined) return
      this.pending.delete(msg.id)
      const error = msg.error as { message?: string } | undefined
      if (error !== undefined) p.reject(new Error(`CDP: ${error.message ?? 'error'}`))
      else p.resolve((msg.result ?? {}) as Record<string, unknown>)
      return
    }
    const method = msg.method as string
    const params = (msg.params ?? {}) as Record<string, unknown>
    if (method === 'Runtime.consoleAPICalled' && (params.type === 'error' || params.type === 'assert')) {
      const args = (params.args as Array<{ value?: unknown, description?: string }> | undefined) ?? []
      this.problems.push({ kind: 'console.error', text: args.map((a) => String(a.value ?? a.description)).join(' ') })
    } else if (method === 'Runtime.exceptionThrown') {
      const details = params.exceptionDetails as { text?: string, exception?: { description?: string } }
      this.problems.push({ kind: 'exception', text: details.exception?.description ?? details.text ?? '' })
    } else if (method === 'Log.entryAdded') {
      const entry = params.entry as { level?: string, text?: string, source?: string }
      if (entry.level === 'error') this.problems.push({ kind: `log (${entry.source ?? ''})`, text: entry.text ?? '' })
    }
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      if (this.waiters[i].method === method) this.waiters.splice(i, 1)[0].resolve(params)
    }
  }

  async send (method: string, params: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    const id = ++this.nextId
    const message: Record<string, unknown> = { id, method, params }
    // Browser-level commands go without a session; page commands to the attached page.
    if (this.sessionId !== undefined && !method.startsWith('Target.') && !method.startsWith('Browser.')) message.sessionId = this.sessionId
    return await new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject })
      this.ws.send(JSON.stringify(message))
    })
  }

  private async event (method: string, timeoutMs = 15_000): Promise<Record<string, unknown>> {
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${method} in ${timeoutMs} ms`)), timeoutMs)
      this.waiters.push({ method, resolve: (p) => { clearTimeout(timer); resolve(p) } })
    })
  }

  /** Opens `url` at `width` CSS pixels and waits for its load event. */
  async open (url: string, width = 1200): Promise<void> {
    await this.send('Emulation.setDeviceMetricsOverride', { width, height: 900, deviceScaleFactor: 1, mobile: false })
    const loaded = this.event('Page.loadEventFired')
    await this.send('Page.navigate', { url })
    await loaded
  }

  /** Evaluates `expression` in the page and returns its (JSON-able) value. */
  async evaluate<T> (expression: string): Promise<T> {
    const r = await this.send('Runtime.evaluate', { expression, returnByValue: true })
    if (r.exceptionDetails !== undefined) throw new Error(`evaluate failed: ${JSON.stringify(r.exceptionDetails)}`)
    return (r.result as { value: T }).value
  }

  /** A PNG of the whole page at `width`. */
  async screenshot (width = 1200): Promise<Buffer> {
    const height = await this.evaluate<number>('Math.ceil(document.documentElement.scrollHeight)')
    await this.send('Emulation.setDeviceMetricsOverride', { width, height, deviceScaleFactor: 1, mobile: false })
    const { data } = await this.send('Page.captureScreenshot', { format: 'png' })
    return Buffer.from(data as string, 'base64')
  }

  /** The page printed to PDF (A4, backgrounds on). */
  async pdf (): Promise<Buffer> {
    const { data } = await this.send('Page.printToPDF', { printBackground: true, preferCSSPageSize: true })
    return Buffer.from(data as string, 'base64')
  }

  async close (): Promise<void> {
    try {
      await Promise.race([this.send('Browser.close'), new Promise((resolve) => setTimeout(resolve, 2000))])
    } catch {
      // Already gone.
    }
    this.ws.terminate()
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      const exited = new Promise((resolve) => this.proc.once('exit', resolve))
      this.proc.kill('SIGKILL')
      await exited
    }
    // Chromium's helper processes may outlive the browser and keep writing into the profile (seen
    // twice in CI as ENOTEMPTY): end the whole group, then remove the profile (retrying a moment).
    try {
      if (this.proc.pid !== undefined) process.kill(-this.proc.pid, 'SIGKILL')
    } catch {
      // The group is gone already.
    }
    rmSync(this.profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 })
  }
}
