/**
 * The shared store: counters in Redis, so that every gateway process enforces one limit.
 * One Lua script does INCR and PEXPIRE atomically. The client never queues a command while
 * disconnected and gives up on a command after `commandTimeout`, so a down or slow Redis costs a
 * request at most that long; every failure becomes a StoreUnavailableError for the plugin's
 * failMode. ioredis reconnects in the background, and the next command that succeeds resumes
 * enforcement.
 */
import { Redis } from 'ioredis'
import { classifyTransportError } from '@faultline/core'
import { StoreUnavailableError, type Count, type CounterStore } from './counter-store.js'

// KEYS[1] the counter; ARGV[1] the window in ms. Returns { count, ms left in the window }.
// A key left without an expiry (written by something else) gets one, so nothing lives forever.
const INCR_SCRIPT = `
local current = redis.call('INCR', KEYS[1])
if current == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  return { current, tonumber(ARGV[1]) }
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return { current, ttl }
`

type ScriptedRedis = Redis & { faultlineIncr?: (key: string, windowMs: number) => Promise<[number, number]> }

export interface RedisStoreOptions {
  client: Redis
  /** Whether the store created the client (and so quits it on close). */
  owned: boolean
  /** `host:port`, for `error_target` and logs. */
  target: string
  /** Called when the store becomes unavailable (with the reason) and when it answers again. */
  onStateChange?: (available: boolean, reason: string | undefined, err: unknown) => void
}

export interface RedisClientOptions {
  url: string
  commandTimeout: number
  connectTimeout: number
}

/** The client the plugin creates from `redis: { url }`: no offline queue, bounded waits, background reconnects. */
export function createRedisClient (options: RedisClientOptions): Redis {
  return new Redis(options.url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    commandTimeout: options.commandTimeout,
    connectTimeout: options.connectTimeout,
    maxRetriesPerRequest: 1,
    // The counters of requests handled in the same tick go out in one write (and their answers come
    // back in one read): with 50 connections that is several requests per round trip.
    enableAutoPipelining: true,
    autoResubscribe: false,
    // Reconnect forever, backing off to one attempt a second: Redis coming back resumes enforcement.
    retryStrategy: (attempt: number) => Math.min(attempt * 100, 1000)
  })
}

/** Why a command failed, for the log: a transport failure's details, else the ioredis reason. */
function failureReason (err: unknown, connectionError: unknown): string {
  const transport = classifyTransportError(connectionError) ?? classifyTransportError(err)
  if (transport !== undefined) return transport.details
  const message = (err as { message?: unknown } | null)?.message
  // ioredis gives these two no code (shared/reference/node-error-shapes.md section 7).
  if (message === 'Command timed out') return 'command_timeout'
  if (typeof message === 'string' && message.startsWith("Stream isn't writeable")) return 'not_connected'
  return 'store_error'
}

export class RedisCounterStore implements CounterStore {
  readonly kind = 'redis'
  readonly target: string
  readonly client: Redis
  /** False from a failed command until the next one that succeeds. */
  available = true
  private readonly owned: boolean
  private readonly onStateChange: RedisStoreOptions['onStateChange']
  private connectionError: unknown = undefined

  constructor (options: RedisStoreOptions) {
    this.client = options.client
    this.owned = options.owned
    this.target = options.target
    this.onStateChange = options.onStateChange
    const client = this.client as ScriptedRedis
    if (typeof client.faultlineIncr !== 'function') {
      // EVALSHA, falling back to EVAL after a restarted Redis forgot the script.
      client.defineCommand('faultlineIncr', { numberOfKeys: 1, lua: INCR_SCRIPT })
    }
    if (this.owned) {
      // The client emits every failed (re)connect; without a listener ioredis prints them.
      this.client.on('error', this.onClientError)
      this.client.on('ready', this.onClientReady)
    }
  }

  private readonly onClientError = (err: unknown): void => {
    this.connectionError = err
  }

  private readonly onClientReady = (): void => {
    this.connectionError = undefined
  }

  /** Connects a client that has not connected yet; resolves either way (failures are retried in the background). */
  async connect (): Promise<void> {
    if (this.client.status !== 'wait') return
    try {
      await this.client.connect()
    } catch {
      // Down at start: the request path applies failMode until ioredis reconnects.
    }
  }

  async incr (key: string, windowMs: number): Promise<Count> {
    let result: [number, number]
    try {
      result = await (this.client as ScriptedRedis & Required<Pick<ScriptedRedis, 'faultlineIncr'>>).faultlineIncr(key, windowMs)
    } catch (err) {
      if (this.available) {
        this.available = false
        this.onStateChange?.(false, failureReason(err, this.connectionError), err)
      }
      throw new StoreUnavailableError(this.target, err)
    }
    if (!this.available) {
      this.available = true
      this.onStateChange?.(true, undefined, undefined)
    }
    return { current: result[0], ttl: result[1] }
  }

  async close (): Promise<void> {
    if (!this.owned) return
    const client = this.client
    const status = client.status
    // Waiting for a reconnect (or never connected): cancelling it leaves no socket behind.
    if (status === 'end' || status === 'wait' || status === 'reconnecting' || status === 'close') {
      client.disconnect()
      return
    }
    const ended = new Promise<void>((resolve) => client.once('end', resolve))
    if (status === 'ready') {
      // QUIT lets in-flight commands finish; the server then closes the connection.
      try {
        await client.quit()
      } catch {
        client.disconnect()
      }
    } else {
      client.disconnect()
    }
    // Resolve once the socket is gone (no handle outlives close), or force it after a second.
    let timer: NodeJS.Timeout | undefined
    await Promise.race([ended, new Promise<void>((resolve) => { timer = setTimeout(resolve, 1000) })])
    clearTimeout(timer)
    if ((client.status as string) !== 'end') client.disconnect()
  }
}
