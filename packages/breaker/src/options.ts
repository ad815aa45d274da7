/** The breaker's options, checked once at registration. */

export interface FaultlineBreakerOptions {
  /** Name of the breaker in its log lines. Default: the API's name (the proxy's `name`). */
  name?: string
  /** The breaker opens when more than this percentage of the judged requests in the window failed. Default 50. */
  errorThresholdPercentage?: number
  /** Judged requests the window must hold before the breaker may open. Default 10. */
  volumeThreshold?: number
  /** ms the breaker stays open before it lets one trial request through. Default 30000. */
  resetTimeout?: number
  /** ms of the rolling window the failure rate is computed over. Default 10000. */
  rollingCountTimeout?: number
  /** Buckets the window is divided in (it slides one bucket at a time). Default 10. */
  rollingCountBuckets?: number
  /** In-flight requests allowed to the upstream (a bulkhead); more get UOF 503. Default: no limit. */
  capacity?: number
}

export interface BreakerSettings {
  name: string | undefined
  errorThresholdPercentage: number
  volumeThreshold: number
  resetTimeout: number
  rollingCountTimeout: number
  rollingCountBuckets: number
  /** Length of one bucket, ms (rollingCountTimeout / rollingCountBuckets). */
  bucketMs: number
  capacity: number
}

export const breakerDefaults = Object.freeze({
  errorThresholdPercentage: 50,
  volumeThreshold: 10,
  resetTimeout: 30000,
  rollingCountTimeout: 10000,
  rollingCountBuckets: 10
})

/** The longest delay setTimeout honours (about 24.8 days). */
const MAX_TIMER_MS = 2147483647
/** Buckets shorter than this would rotate the windows of every breaker too often. */
const MIN_BUCKET_MS = 10

const KNOWN = new Set([
  'name', 'errorThresholdPercentage', 'volumeThreshold', 'resetTimeout', 'rollingCountTimeout', 'rollingCountBuckets', 'capacity',
  // Fastify's own register options may ride along.
  'prefix', 'logLevel', 'logSerializers'
])

function fail (option: string, expected: string, value: unknown): never {
  throw new TypeError(`@faultline/breaker: option "${option}" must be ${expected}, got ${JSON.stringify(value) ?? String(value)}`)
}

function integer (option: string, value: unknown, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    fail(option, max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer from ${min} to ${max}`, value)
  }
  return value
}

export function validateBreakerOptions (options: FaultlineBreakerOptions | undefined): BreakerSettings {
  const opts: FaultlineBreakerOptions = options ?? {}
  if (typeof opts !== 'object' || opts === null || Array.isArray(opts)) fail('(options)', 'an object', opts)
  for (const key of Object.keys(opts)) {
    if (!KNOWN.has(key)) throw new TypeError(`@faultline/breaker: unknown option "${key}"`)
  }
  if (opts.name !== undefined && (typeof opts.name !== 'string' || opts.name.length === 0)) fail('name', 'a non-empty string', opts.name)
  const threshold = opts.errorThresholdPercentage ?? breakerDefaults.errorThresholdPercentage
  if (typeof threshold !== 'number' || !Number.isFinite(threshold) || threshold < 0 || threshold >= 100) {
    // The breaker opens when the rate is strictly above the threshold: 100 would never open it.
    fail('errorThresholdPercentage', 'a number >= 0 and < 100', opts.errorThresholdPercentage)
  }
  const volumeThreshold = integer('volumeThreshold', opts.volumeThreshold, breakerDefaults.volumeThreshold, 1)
  const resetTimeout = integer('resetTimeout', opts.resetTimeout, breakerDefaults.resetTimeout, 1, MAX_TIMER_MS)
  const rollingCountTimeout = integer('rollingCountTimeout', opts.rollingCountTimeout, breakerDefaults.rollingCountTimeout, MIN_BUCKET_MS, MAX_TIMER_MS)
  const rollingCountBuckets = integer('rollingCountBuckets', opts.rollingCountBuckets, breakerDefaults.rollingCountBuckets, 1)
  if (rollingCountTimeout % rollingCountBuckets !== 0 || rollingCountTimeout / rollingCountBuckets < MIN_BUCKET_MS) {
    fail('rollingCountBuckets', `a divisor of rollingCountTimeout (${rollingCountTimeout}) leaving buckets of at least ${MIN_BUCKET_MS} ms`, opts.rollingCountBuckets)
  }
  const capacity = integer('capacity', opts.capacity, Number.MAX_SAFE_INTEGER, 1)
  return {
    name: opts.name,
    errorThresholdPercentage: threshold,
    volumeThreshold,
    resetTimeout,
    rollingCountTimeout,
    rollingCountBuckets,
    bucketMs: rollingCountTimeout / rollingCountBuckets,
    capacity
  }
}
