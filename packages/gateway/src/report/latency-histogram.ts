/**
 * Latency percentiles in fixed memory: a log-bucketed histogram (eight buckets per doubling, so a
 * percentile is within about 4.5% of the true value), whatever the number of values recorded.
 */

/** Values at or below this (ms) fall in bucket 0. */
const FLOOR_MS = 0.001
const BUCKETS_PER_DOUBLING = 8
/** 0.001 ms to 2^36 µs (about 19 hours): every latency a gateway can log, then one overflow bucket. */
const DOUBLINGS = 36
const SIZE = DOUBLINGS * BUCKETS_PER_DOUBLING + 2
const SCALE = BUCKETS_PER_DOUBLING / Math.LN2

export interface LatencyPercentiles {
  count: number
  min: number
  p50: number
  p90: number
  p99: number
  max: number
}

function bucketOf (ms: number): number {
  if (!(ms > FLOOR_MS)) return 0
  const i = 1 + Math.floor(Math.log(ms / FLOOR_MS) * SCALE)
  return i < SIZE ? i : SIZE - 1
}

/** The geometric middle of bucket `i` (bucket 0: the floor itself). */
function valueOf (i: number): number {
  if (i === 0) return 0
  return FLOOR_MS * Math.exp((i - 0.5) / SCALE)
}

function round3 (ms: number): number {
  return Math.round(ms * 1000) / 1000
}

export class LatencyHistogram {
  readonly counts = new Float64Array(SIZE)
  count = 0
  min = Infinity
  max = -Infinity

  record (ms: number): void {
    if (!(ms >= 0) || ms === Infinity) return
    this.counts[bucketOf(ms)]++
    this.count++
    if (ms < this.min) this.min = ms
    if (ms > this.max) this.max = ms
  }

  merge (other: LatencyHistogram): void {
    for (let i = 0; i < SIZE; i++) this.counts[i] += other.counts[i]
    this.count += other.count
    if (other.min < this.min) this.min = other.min
    if (other.max > this.max) this.max = other.max
  }

  /**
   * The value below which `q` (0..1) of the recorded values lie, clamped to the exact min and
   * max (so one value, or identical values, come back exactly). NaN when empty.
   */
  quantile (q: number): number {
    if (this.count === 0) return NaN
    const rank = Math.max(1, Math.ceil(q * this.count))
    let seen = 0
    for (let i = 0; i < SIZE; i++) {
      seen += this.counts[i]
      // The overflow bucket has no upper bound: its best estimate is the maximum.
      if (seen >= rank) return round3(i === SIZE - 1 ? this.max : Math.min(this.max, Math.max(this.min, valueOf(i))))
    }
    return round3(this.max)
  }

  percentiles (): LatencyPercentiles | null {
    if (this.count === 0) return null
    return {
      count: this.count,
      min: round3(this.min),
      p50: this.quantile(0.5),
      p90: this.quantile(0.9),
      p99: this.quantile(0.99),
      max: round3(this.max)
    }
  }
}
