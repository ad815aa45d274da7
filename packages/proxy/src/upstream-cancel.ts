/**
 * Cancels a request's upstream call when its client goes away. undici accepts an EventEmitter-like
 * object as `signal` (anything with `on`, `once` and `removeListener`, plus `aborted` and
 * `reason`). This one is a plain object with a listener slot: an AbortController per request cost
 * about a quarter of the proxy's CPU per request (bench/, BENCHMARKS.md), through the AbortSignal
 * (an EventTarget) that undici subscribes to and unsubscribes from on every request.
 */
type Listener = () => void

export class UpstreamCancel {
  aborted = false
  reason: Error | undefined = undefined
  /** The current attempt's listener; with retries, each attempt subscribes after the last left. */
  private listener: Listener | null = null
  private others: Listener[] | null = null

  on (_event: 'abort', listener: Listener): this {
    if (this.listener === null) this.listener = listener
    else (this.others ??= []).push(listener)
    return this
  }

  once (event: 'abort', listener: Listener): this {
    // It fires at most once anyway.
    return this.on(event, listener)
  }

  addListener (event: 'abort', listener: Listener): this {
    return this.on(event, listener)
  }

  removeListener (_event: 'abort', listener: Listener): this {
    if (this.listener === listener) this.listener = null
    else if (this.others !== null) {
      const i = this.others.indexOf(listener)
      if (i !== -1) this.others.splice(i, 1)
    }
    return this
  }

  off (event: 'abort', listener: Listener): this {
    return this.removeListener(event, listener)
  }

  abort (): void {
    if (this.aborted) return
    this.aborted = true
    const first = this.listener
    const others = this.others
    this.listener = null
    this.others = null
    first?.()
    if (others !== null) for (const listener of others) listener()
  }
}
