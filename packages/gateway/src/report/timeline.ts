/**
 * Requests and errors by category over time, in fixed memory: per-minute buckets, coarsened to
 * hours and then days when the span would need more than MAX_BUCKETS of them.
 */

/** Error categories in display order (CONTRACT.md section 1), then whatever else a line said. */
export const CATEGORIES = ['upstream', 'gateway', 'auth', 'rate_limit', 'client'] as const
export const OTHER_CATEGORY = 'other'
/**
 * Slot 0 counts requests; slots 1.. count errors per category, then "other"; the last two sum
 * the upstream latency of the requests that have one, and count them (for its mean over time).
 */
const ERROR_SLOTS = CATEGORIES.length + 1
const SUM = ERROR_SLOTS + 1
const COUNT = ERROR_SLOTS + 2
const SLOTS = ERROR_SLOTS + 3

export function categorySlot (category: string | undefined): number {
  switch (category) {
    case 'upstream': return 1
    case 'gateway': return 2
    case 'auth': return 3
    case 'rate_limit': return 4
    case 'client': return 5
    default: return 6
  }
}

const MINUTE = 60_000
const HOUR = 3_600_000
const DAY = 86_400_000
/** Two weeks of minutes; past it, hours (about two years), then days, then weeks... */
const MAX_BUCKETS = 20_160

export interface TimelineBucket {
  /** Bucket start, ms since the epoch. */
  start: number
  requests: number
  /** Errors per category, in CATEGORIES order, then "other". */
  errors: number[]
  /** Sum (ms) and number of the upstream latencies: their mean shows an upstream slowing down. */
  upstreamLatencySum: number
  upstreamLatencyCount: number
}

function round3 (ms: number): number {
  return Math.round(ms * 1000) / 1000
}

/** Mean upstream latency of a bucket (ms, three decimals), or null when nothing reached an upstream. */
export function meanUpstreamLatency (b: TimelineBucket): number | null {
  return b.upstreamLatencyCount > 0 ? round3(b.upstreamLatencySum / b.upstreamLatencyCount) : null
}

export interface TimelineData {
  /** Bucket width in ms. */
  bucketMs: number
  buckets: TimelineBucket[]
}

export class Timeline {
  bucketMs = MINUTE
  readonly buckets = new Map<number, Float64Array>()
  // The previous line's bucket: consecutive lines almost always share it.
  private lastKey = NaN
  private lastCounts: Float64Array | undefined = undefined

  /**
   * Adds a request; `slot` is 0 for a request that is not an error, else categorySlot();
   * `upstreamLatency` NaN when it did not reach an upstream.
   */
  add (time: number, slot: number, upstreamLatency: number): void {
    const key = Math.floor(time / this.bucketMs)
    let counts = key === this.lastKey ? this.lastCounts : this.buckets.get(key)
    if (counts === undefined) {
      if (this.buckets.size >= MAX_BUCKETS) {
        this.coarsen()
        this.add(time, slot, upstreamLatency)
        return
      }
      counts = new Float64Array(SLOTS)
      this.buckets.set(key, counts)
    }
    this.lastKey = key
    this.lastCounts = counts
    counts[0]++
    if (slot > 0) counts[slot]++
    if (upstreamLatency >= 0) {
      counts[SUM] += upstreamLatency
      counts[COUNT]++
    }
  }

  private coarsen (): void {
    const next = this.bucketMs === MINUTE ? HOUR : this.bucketMs === HOUR ? DAY : this.bucketMs * 7
    const factor = next / this.bucketMs
    const old = [...this.buckets]
    this.buckets.clear()
    this.lastKey = NaN
    this.lastCounts = undefined
    this.bucketMs = next
    for (const [key, counts] of old) {
      const k = Math.floor(key / factor)
      const into = this.buckets.get(k)
      if (into === undefined) this.buckets.set(k, counts)
      else for (let i = 0; i < SLOTS; i++) into[i] += counts[i]
    }
  }

  /**
   * Every bucket from the first to the last (empty ones included), merged so that there are at
   * most `maxBuckets`, with a width from a list of round intervals.
   */
  series (maxBuckets: number): TimelineData {
    const keys = [...this.buckets.keys()].sort((a, b) => a - b)
    const data: TimelineData = { bucketMs: this.bucketMs, buckets: [] }
    for (const key of keys) {
      const counts = this.buckets.get(key) as Float64Array
      data.buckets.push({
        start: key * this.bucketMs,
        requests: counts[0],
        errors: Array.from(counts.subarray(1, ERROR_SLOTS + 1)),
        upstreamLatencySum: round3(counts[SUM]),
        upstreamLatencyCount: counts[COUNT]
      })
    }
    return regroup(data, maxBuckets)
  }
}

/**
 * Buckets (sorted, any gaps) merged into contiguous buckets of one round width, the smallest
 * multiple of the current width that needs at most `maxBuckets`; empty buckets filled in.
 */
export function regroup (data: TimelineData, maxBuckets: number): TimelineData {
  const { buckets } = data
  if (buckets.length === 0) return { bucketMs: data.bucketMs, buckets: [] }
  const first = buckets[0].start
  const last = buckets[buckets.length - 1].start
  const width = chooseWidth(data.bucketMs, first, last, maxBuckets)
  const start = Math.floor(first / width) * width
  const n = Math.floor(last / width) - Math.floor(first / width) + 1
  const slots = buckets[0].errors.length
  const out: TimelineBucket[] = []
  for (let i = 0; i < n; i++) {
    out.push({ start: start + i * width, requests: 0, errors: new Array<number>(slots).fill(0), upstreamLatencySum: 0, upstreamLatencyCount: 0 })
  }
  for (const b of buckets) {
    const into = out[Math.floor((b.start - start) / width)]
    into.requests += b.requests
    into.upstreamLatencySum = round3(into.upstreamLatencySum + b.upstreamLatencySum)
    into.upstreamLatencyCount += b.upstreamLatencyCount
    for (let i = 0; i < slots; i++) into.errors[i] += b.errors[i]
  }
  return { bucketMs: width, buckets: out }
}

const WIDTHS = [
  MINUTE, 2 * MINUTE, 5 * MINUTE, 10 * MINUTE, 15 * MINUTE, 30 * MINUTE,
  HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR,
  DAY, 2 * DAY, 7 * DAY, 14 * DAY, 28 * DAY
]

function chooseWidth (resolution: number, first: number, last: number, maxBuckets: number): number {
  for (const width of WIDTHS) {
    if (width < resolution || width % resolution !== 0) continue
    if (Math.floor(last / width) - Math.floor(first / width) + 1 <= maxBuckets) return width
  }
  // Longer than the list: doublings of (about) four weeks.
  let width = resolution * Math.max(1, Math.ceil(28 * DAY / resolution))
  while (Math.floor(last / width) - Math.floor(first / width) + 1 > maxBuckets) width *= 2
  return width
}

/** "1 minute", "15 minutes", "1 hour", "1 day"... for chart titles. */
export function describeWidth (ms: number): string {
  const [unit, size] = ms % DAY === 0 ? ['day', DAY] : ms % HOUR === 0 ? ['hour', HOUR] : ['minute', MINUTE]
  const n = ms / size
  return n === 1 ? unit : `${n} ${unit}s`
}
