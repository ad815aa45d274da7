/**
 * Maps whose size is capped: the first `cap` distinct keys get their own entry, every later key
 * is folded into one "other" entry. A log with millions of distinct targets or paths cannot grow
 * the report's memory past the cap.
 */

/** How the folded entry is labelled in every output. */
export const OTHER_LABEL = '(other)'

export class BoundedMap<V> {
  readonly entries = new Map<string, V>()
  /** Everything whose key came after the cap was reached; `undefined` until then. */
  other: V | undefined = undefined

  constructor (readonly cap: number, private readonly create: () => V) {}

  /** The entry for `key`, created if there is room, else the "other" entry. */
  slot (key: string): V {
    let value = this.entries.get(key)
    if (value === undefined) {
      if (this.entries.size < this.cap) {
        value = this.create()
        this.entries.set(key, value)
      } else {
        if (this.other === undefined) this.other = this.create()
        value = this.other
      }
    }
    return value
  }

  /** Every entry, the "other" one last under OTHER_LABEL. */
  * all (): IterableIterator<[string, V]> {
    yield * this.entries
    if (this.other !== undefined) yield [OTHER_LABEL, this.other]
  }
}

/** A BoundedMap of counts. */
export class BoundedCounter {
  readonly counts = new Map<string, number>()
  other = 0

  constructor (readonly cap: number) {}

  add (key: string, n = 1): void {
    const count = this.counts.get(key)
    if (count !== undefined) this.counts.set(key, count + n)
    else if (this.counts.size < this.cap) this.counts.set(key, n)
    else this.other += n
  }

  /** Entries by count, highest first (ties by key, for stable output), "other" last; at most `limit` plus "other". */
  top (limit = Infinity): Array<{ key: string, count: number }> {
    const sorted = [...this.counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    const out = sorted.slice(0, limit).map(([key, count]) => ({ key, count }))
    let rest = this.other
    for (let i = limit; i < sorted.length; i++) rest += sorted[i][1]
    if (rest > 0) out.push({ key: OTHER_LABEL, count: rest })
    return out
  }
}
