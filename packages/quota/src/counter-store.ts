/**
 * What the rate limit and the quota count with: a fixed-window counter per key. Two
 * implementations: in memory (bounded, per process) and Redis (shared between processes).
 */

export interface Count {
  /** The key's count, this increment included. */
  current: number
  /** ms until the key's window ends. */
  ttl: number
}

export interface CounterStore {
  /** `memory` or `redis`. */
  readonly kind: 'memory' | 'redis'
  /**
   * Adds one to `key` and returns its new count. A key that does not exist (or whose window ended)
   * starts a new window of `windowMs`. Rejects with a StoreUnavailableError when the store failed.
   */
  incr: (key: string, windowMs: number) => Promise<Count>
  /** Releases what the store holds (timers, connections it owns). */
  close: () => Promise<void>
}

/** The shared store could not answer (down, slow, refused): the plugin applies `failMode`. */
export class StoreUnavailableError extends Error {
  readonly code = 'FAULTLINE_STORE_UNAVAILABLE'
  /** `host:port` of the store, for `error_target`. */
  readonly target: string

  constructor (target: string, cause: unknown) {
    super(`the rate-limit store at ${target} is unavailable`, { cause })
    this.name = 'StoreUnavailableError'
    this.target = target
  }
}
