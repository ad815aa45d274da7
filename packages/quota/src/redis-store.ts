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

// Counts one request on KEYS[n] with a window of `window` ms; returns the count and the ms left.
// A key left without an expiry (written by something else) gets one, so nothing lives forever.
const COUNT_FUNCTION = `
local function count(key, window)
  local current = redis.call('INCR', key)
  if current == 1 then
    redis.call('PEXPIRE', key, window)
    return current, tonumber(window)
  end
  local ttl = redis.call('PTTL', key)
  if ttl < 0 then
    redis.call('PEXPIRE', key, window)
    ttl = tonumber(window)
  end
  return current, ttl
end
`

// KEYS[1] the counter; ARGV[1] the window in ms. Returns { count, ms left in the window }.
const INCR_SCRIPT = COUNT_FUNCTION + `
local current, ttl = count(KEYS[1], ARGV[1])
return { current, ttl }
`

// The rate limit and the quota of one request in one round trip. KEYS[1] the rate-limit counter,
// KEYS[2] the quota counter; ARGV[1] the rate-limit window (ms), ARGV[2] its max, ARGV[3] the quota
// window (ms). The quota is counted only when the rate limit admits the request:
// returns { rate-limit count, its ms left } for a refused request, else both pairs.
const INCR_PAIR_SCRIPT = COUNT_FUNCTION + `
local current, ttl = count(KEYS[1], ARGV[1])
if current > tonumber(ARGV[2]) then
  return { current, ttl }
end
local second, secondTtl = count(KEYS[2], ARGV[3])
return { current, ttl, second, secondTtl }
`

interface FaultlineCommands {
  faultlineIncr: (key: string, windowMs: number) => Promise<[number, number]>
  faultlineIncrPair: (first: string, second: string, firstWindowMs: number, firstMax: number, secondWindowMs: number) =>
  Promise<[number, number] | [number, number, number, number]>
}
type ScriptedRedis = Redis & Partial<FaultlineCommands>

/** Two counters taken in one round trip: the second only when the first stayed within its max. */
export interface CountPair {
  first: Count
  /** Undefined when the first count went over its max (the second was not counted). */
  second: Count | undefined
}

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
    // No auto-pipelining: a Pipeline per batch, its queues and promises, cost the gateway more than
    // the writes it saved (paired, 9 rounds: 1.06x the throughput without it, CPU per request 217
    // against 240 µs; BENCHMARKS.md). The counts of one turn share a write anyway (gatherWrites).
    enableAutoPipelining: false,
    autoResubscribe: false,
    // Reconnect forever, backing off to one attempt a second: Redis coming back resumes enforcement.
    retryStrategy: (attempt: number) => Math.min(attempt * 100, 1000)
  })
}

/**
 * Commands sent while the event loop handles one batch of I/O go out in one write. Each write to
 * the Redis socket is a system call that, on loopback, also runs the kernel's receive path: under
 * the harness's load it was the largest single cost of a count (about 30 µs of gateway CPU per
 * request, BENCHMARKS.md). The first command of a batch corks the client's socket and a
 * setImmediate (which runs once the loop has handled every ready socket) uncorks it: the
 * commands leave together, in order, within the same loop iteration, each still its own command
 * with its own timeout. (ioredis's auto-pipelining also gathers per setImmediate, but through a
 * Pipeline per batch, whose queues and promises cost more than the writes it saved; see
 * createRedisClient.) One cork per client, however many stores share it.
 */
const gathering = new WeakSet<Redis>()

function gatherWrites (client: Redis): void {
  if (gathering.has(client) || client.status !== 'ready') return
  // A client without a socket of its own (a Cluster spreads commands over several) writes as it goes.
  const stream = (client as Partial<Redis>).stream
  if (typeof stream?.cork !== 'function') return
  stream.cork()
  gathering.add(client)
  setImmediate(() => {
    gathering.delete(client)
    stream.uncork()
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
  private readonly commands: Redis & FaultlineCommands

  constructor (options: RedisStoreOptions) {
    this.client = options.client
    this.owned = options.owned
    this.target = options.target
    this.onStateChange = options.onStateChange
    const client = this.client as ScriptedRedis
    // EVALSHA, falling back to EVAL after a restarted Redis forgot the script.
    if (typeof client.faultlineIncr !== 'function') client.defineCommand('faultlineIncr', { numberOfKeys: 1, lua: INCR_SCRIPT })
    if (typeof client.faultlineIncrPair !== 'function') client.defineCommand('faultlineIncrPair', { numberOfKeys: 2, lua: INCR_PAIR_SCRIPT })
    this.commands = client as Redis & FaultlineCommands
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
    gatherWrites(this.client)
    const result = await this.run(this.commands.faultlineIncr(key, windowMs))
    return { current: result[0], ttl: result[1] }
  }

  /**
   * Counts `first` and, only when its count stays within `firstMax`, `second`: one script, one
   * round trip (the rate limit and the quota of one request).
   */
  async incrPair (first: string, firstWindowMs: number, firstMax: number, second: string, secondWindowMs: number): Promise<CountPair> {
    gatherWrites(this.client)
    const result = await this.run(this.commands.faultlineIncrPair(first, second, firstWindowMs, firstMax, secondWindowMs))
    return {
      first: { current: result[0], ttl: result[1] },
      second: result.length === 4 ? { current: result[2], ttl: result[3] } : undefined
    }
  }

  /** Awaits a command: a failure marks the store unavailable and becomes a StoreUnavailableError; a success marks it available. */
  private async run<T> (command: Promise<T>): Promise<T> {
    let result: T
    try {
      result = await command
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
    return result
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
