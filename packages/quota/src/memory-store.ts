/**
 * The default store: counters in this process, bounded. A Map kept in least-recently-used order
 * (a touched key is moved to the end); past `maxKeys` the oldest key is dropped, so a flood of
 * distinct keys costs at most `maxKeys` entries. Expired windows are dropped when met.
 */
import type { Count, CounterStore } from './counter-store.js'

interface Entry {
  current: number
  /** Epoch ms (store clock) when the window ends. */
  resetAt: number
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
  /** Keys dropped to stay under maxKeys (live windows forgotten early). */
  evictions = 0

  constructor (options: MemoryStoreOptions) {
    this.maxKeys = options.maxKeys
    this.clock = options.clock ?? Date.now
  }

  /** Keys held right now (never more than maxKeys). */
  get size (): number {
    return this.entries.size
  }

  incrSync (key: string, windowMs: number): Count {
    const now = this.clock()
    const entries = this.entries
    let entry = entries.get(key)
    if (entry === undefined || entry.resetAt <= now) {
      entry = { current: 1, resetAt: now + windowMs }
    } else {
      entry.current++
    }
    // Re-inserting moves the key to the end: the Map's first key is the least recently used.
    entries.delete(key)
    entries.set(key, entry)
    if (entries.size > this.maxKeys) this.evictOldest(now)
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
