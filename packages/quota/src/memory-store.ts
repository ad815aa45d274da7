/**
 * The default store: counters in this process, bounded. A Map kept in (nearly) least-recently-used
 * order; past `maxKeys` the key at its front is dropped, so a flood of distinct keys costs at most
 * `maxKeys` entries. Expired windows are dropped when met.
 *
 * A touched key is moved to the end (delete and set again) only when it has not been moved in the
 * last `maxKeys / 2` counts: a busy key costs one move in thousands of requests rather than one
 * per request (the two Map operations were most of a count's cost). The promise kept: a key
 * counted at least once in the last `maxKeys / 2` counts is never the one dropped.
 */
import type { Count, CounterStore } from './counter-store.js'

interface Entry {
  current: number
  /** Epoch ms (store clock) when the window ends. */
  resetAt: number
  /** The store's count of counts when this entry was last moved to the end. */
  movedAt: number
}

export interface MemoryStoreOptions {
  /** The most keys kept. */
  maxKeys: number
  /** Epoch ms. Default Date.now. */
  clock?: () => number
}

export class MemoryCounterStore implements CounterStore {
  readonly kind = 'memory'
  readonly maxKeys: number
  private readonly clock: () => number
  private readonly entries = new Map<string, Entry>()
  /** Counts taken so far (the clock of the least-recently-used order). */
  private counts = 0
  /** A touched entry moved longer ago than this (in counts) is moved to the end again. */
  private readonly moveAfter: number
  /** Keys dropped to stay under maxKeys (live windows forgotten early). */
  evictions = 0

  constructor (options: MemoryStoreOptions) {
    this.maxKeys = options.maxKeys
    this.moveAfter = Math.floor(options.maxKeys / 2)
    this.clock = options.clock ?? Date.now
  }

  /** Keys held right now (never more than maxKeys). */
  get size (): number {
    return this.entries.size
  }

  incrSync (key: string, windowMs: number): Count {
    const now = this.clock()
    const entries = this.entries
    const counts = ++this.counts
    let entry = entries.get(key)
    if (entry === undefined) {
      entry = { current: 1, resetAt: now + windowMs, movedAt: counts }
      entries.set(key, entry)
      if (entries.size > this.maxKeys) this.evictOldest(now)
      return { current: 1, ttl: windowMs }
    }
    if (entry.resetAt <= now) {
      entry.current = 1
      entry.resetAt = now + windowMs
    } else {
      entry.current++
    }
    if (counts - entry.movedAt > this.moveAfter) {
      // Re-inserting moves the key to the end: the Map's first key is the least recently moved.
      entry.movedAt = counts
      entries.delete(key)
      entries.set(key, entry)
    }
    return { current: entry.current, ttl: entry.resetAt - now }
  }

  async incr (key: string, windowMs: number): Promise<Count> {
    return this.incrSync(key, windowMs)
  }

  private evictOldest (now: number): void {
    for (const [key, entry] of this.entries) {
      this.entries.delete(key)
      if (entry.resetAt > now) this.evictions++
      if (this.entries.size <= this.maxKeys) return
    }
  }

  async close (): Promise<void> {
    this.entries.clear()
  }
}
