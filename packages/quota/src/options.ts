/**
 * The plugin's options, as users write them, and their validation into settings (once, at
 * registration, with messages that name the option and the bad value).
 */
import type { Redis } from 'ioredis'
import { isCalendarPeriod, type CalendarPeriod } from './calendar-period.js'

export interface RateLimitOptions {
  /** Requests allowed per window (integer >= 1). */
  max: number
  /** Window length: milliseconds, or a string such as `'1 minute'`, `'30s'`, `'2 hours'`. */
  timeWindow: number | string
  /**
   * Who the limit applies to. `consumer` (default): the consumer the auth plugin identified, or the
   * client IP when the request has none. `ip`: always the client IP.
   */
  key?: 'consumer' | 'ip'
}

export interface QuotaOptions {
  /** Requests allowed per calendar period (integer >= 1). */
  max: number
  /** Calendar period in UTC: `day`, `week` (ISO week, from Monday 00:00) or `month`. */
  period: CalendarPeriod
  /** Who the quota applies to: the consumer (the client IP when the request has none). */
  key?: 'consumer'
}

export interface RedisConnectionOptions {
  /** `redis://[user:password@]host[:port][/db]` or `rediss://...` for TLS. */
  url: string
  /** ms a store command may take before the request goes on without it (failMode). Default 500. */
  commandTimeout?: number
  /** ms to establish a connection. Default 1000. */
  connectTimeout?: number
}

export interface FaultlineQuotaOptions {
  /** Per-window rate limit (RLT 429). Absent: no rate limit. */
  rateLimit?: RateLimitOptions
  /** Per-period quota (QEX 403). Absent: no quota. */
  quota?: QuotaOptions
  /**
   * Share counters through Redis: connection options (the plugin creates, owns and closes the
   * client), or an ioredis client you own (created with `enableOfflineQueue: false` and a
   * `commandTimeout`; it is left open on close). Absent: in-memory stores, per process.
   */
  redis?: RedisConnectionOptions | Redis
  /** What happens when the Redis store fails: `open` (default) lets requests through, `closed` answers RLE 503. */
  failMode?: 'open' | 'closed'
  /** In-memory stores only: the most keys each store keeps (least recently used evicted). Default 10000. */
  cache?: { max?: number }
  /** Prefix of every store key. Default `faultline:`. */
  keyPrefix?: string
  /** Milliseconds since the epoch. Decides quota periods and in-memory expiry. Default `Date.now`. */
  clock?: () => number
}

export interface QuotaSettings {
  rateLimit: { max: number, timeWindow: number, key: 'consumer' | 'ip' } | undefined
  quota: { max: number, period: CalendarPeriod, key: 'consumer' } | undefined
  redis:
  | { kind: 'url', url: string, commandTimeout: number, connectTimeout: number, target: string }
  | { kind: 'client', client: Redis, target: string }
  | undefined
  failMode: 'open' | 'closed'
  cacheMax: number
  keyPrefix: string
  clock: () => number
}

const PREFIX = '@faultline/quota'

function show (value: unknown): string {
  if (typeof value === 'function') return 'a function'
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value)
  try {
    return JSON.stringify(value) ?? String(value)
  } catch {
    return String(value)
  }
}

function fail (option: string, expected: string, value: unknown): never {
  throw new TypeError(`${PREFIX}: option "${option}" must be ${expected}, got ${show(value)}`)
}

function isObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function positiveInteger (option: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) fail(option, 'an integer >= 1', value)
  return value
}

function checkKeys (option: string, value: Record<string, unknown>, known: readonly string[]): void {
  for (const name of Object.keys(value)) {
    if (!known.includes(name)) {
      throw new TypeError(`${PREFIX}: unknown option "${option}.${name}" (known: ${known.join(', ')})`)
    }
  }
}

const units: Record<string, number> = {
  ms: 1,
  millisecond: 1,
  milliseconds: 1,
  s: 1000,
  sec: 1000,
  secs: 1000,
  second: 1000,
  seconds: 1000,
  m: 60_000,
  min: 60_000,
  mins: 60_000,
  minute: 60_000,
  minutes: 60_000,
  h: 3_600_000,
  hr: 3_600_000,
  hrs: 3_600_000,
  hour: 3_600_000,
  hours: 3_600_000,
  d: 86_400_000,
  day: 86_400_000,
  days: 86_400_000
}

const durationPattern = /^(\d+(?:\.\d+)?)\s*([a-z]+)$/

/** `1000`, `'1 minute'`, `'30s'`, `'1.5 hours'` → milliseconds; undefined when it is not a duration. */
export function parseDuration (value: number | string): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined
  const match = durationPattern.exec(value.trim().toLowerCase())
  if (match === null) return undefined
  const unit = units[match[2]]
  return unit === undefined ? undefined : Number(match[1]) * unit
}

function timeWindow (value: unknown): number {
  const expected = "a number of milliseconds >= 1 or a duration such as '1 minute', '30s', '2 hours'"
  if (typeof value !== 'number' && typeof value !== 'string') fail('rateLimit.timeWindow', expected, value)
  const ms = parseDuration(value)
  if (ms === undefined || ms < 1 || !Number.isSafeInteger(Math.round(ms))) fail('rateLimit.timeWindow', expected, value)
  return Math.round(ms)
}

/** `host:port` of a Redis URL, as `error_target` names it. */
export function redisTarget (url: URL): string {
  return `${url.hostname}:${url.port === '' ? '6379' : url.port}`
}

function isRedisClient (value: unknown): value is Redis {
  return isObject(value) && typeof value.defineCommand === 'function' && typeof value.quit === 'function' &&
    isObject(value.options)
}

function redisSettings (value: unknown): QuotaSettings['redis'] {
  if (value === undefined) return undefined
  if (isRedisClient(value)) {
    const options = value.options as { enableOfflineQueue?: boolean, commandTimeout?: number, host?: string, port?: number }
    if (options.enableOfflineQueue !== false) {
      fail('redis', 'an ioredis client created with enableOfflineQueue: false (queued commands would make requests wait for a reconnect)', `a client with enableOfflineQueue: ${show(options.enableOfflineQueue)}`)
    }
    if (typeof options.commandTimeout !== 'number' || options.commandTimeout <= 0) {
      fail('redis', 'an ioredis client created with a commandTimeout (ms; a slow Redis would make requests hang)', `a client with commandTimeout: ${show(options.commandTimeout)}`)
    }
    return { kind: 'client', client: value, target: `${options.host ?? 'localhost'}:${options.port ?? 6379}` }
  }
  if (!isObject(value)) fail('redis', '{ url } or an ioredis client', value)
  checkKeys('redis', value, ['url', 'commandTimeout', 'connectTimeout'])
  const raw = value.url
  if (typeof raw !== 'string') fail('redis.url', 'a redis:// or rediss:// URL', raw)
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    fail('redis.url', 'a redis:// or rediss:// URL', raw)
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') fail('redis.url', 'a redis:// or rediss:// URL', raw)
  if (url.hostname === '') fail('redis.url', 'a URL with a host', raw)
  const commandTimeout = value.commandTimeout === undefined ? 500 : positiveInteger('redis.commandTimeout', value.commandTimeout)
  const connectTimeout = value.connectTimeout === undefined ? 1000 : positiveInteger('redis.connectTimeout', value.connectTimeout)
  return { kind: 'url', url: raw, commandTimeout, connectTimeout, target: redisTarget(url) }
}

export function validateOptions (options: FaultlineQuotaOptions): Readonly<QuotaSettings> {
  if (!isObject(options)) fail('options', 'an object', options)
  checkKeys('options', options as unknown as Record<string, unknown>,
    ['rateLimit', 'quota', 'redis', 'failMode', 'cache', 'keyPrefix', 'clock'])

  let rateLimit: QuotaSettings['rateLimit']
  if (options.rateLimit !== undefined) {
    const rl: unknown = options.rateLimit
    if (!isObject(rl)) fail('rateLimit', '{ max, timeWindow, key? }', rl)
    checkKeys('rateLimit', rl, ['max', 'timeWindow', 'key'])
    const key = rl.key ?? 'consumer'
    if (key !== 'consumer' && key !== 'ip') fail('rateLimit.key', "'consumer' or 'ip'", rl.key)
    rateLimit = { max: positiveInteger('rateLimit.max', rl.max), timeWindow: timeWindow(rl.timeWindow), key }
  }

  let quota: QuotaSettings['quota']
  if (options.quota !== undefined) {
    const q: unknown = options.quota
    if (!isObject(q)) fail('quota', '{ max, period, key? }', q)
    checkKeys('quota', q, ['max', 'period', 'key'])
    if (!isCalendarPeriod(q.period)) fail('quota.period', "'day', 'week' or 'month'", q.period)
    if (q.key !== undefined && q.key !== 'consumer') fail('quota.key', "'consumer'", q.key)
    quota = { max: positiveInteger('quota.max', q.max), period: q.period, key: 'consumer' }
  }

  const failMode = options.failMode ?? 'open'
  if (failMode !== 'open' && failMode !== 'closed') fail('failMode', "'open' or 'closed'", options.failMode)

  let cacheMax = 10_000
  if (options.cache !== undefined) {
    const cache: unknown = options.cache
    if (!isObject(cache)) fail('cache', '{ max }', cache)
    checkKeys('cache', cache, ['max'])
    if (cache.max !== undefined) cacheMax = positiveInteger('cache.max', cache.max)
  }

  const keyPrefix = options.keyPrefix ?? 'faultline:'
  if (typeof keyPrefix !== 'string') fail('keyPrefix', 'a string', options.keyPrefix)

  const clock: unknown = options.clock ?? Date.now
  if (typeof clock !== 'function') fail('clock', 'a function returning epoch milliseconds', options.clock)

  return Object.freeze({
    rateLimit,
    quota,
    redis: redisSettings(options.redis),
    failMode,
    cacheMax,
    keyPrefix,
    clock: clock as () => number
  })
}
