/**
 * Rate limits and quotas for one API: register it in the API's scope after auth (so the consumer
 * is known) and before the routes. The rate limit runs through @fastify/rate-limit (its hook, its
 * headers) over our own store; the quota is counted only for requests the rate limit let through.
 * Both share one failure policy when the Redis store fails (failMode).
 */
import type {
  FastifyInstance,
  FastifyPluginAsync,
  FastifyReply,
  FastifyRequest,
  HookHandlerDoneFunction,
  onRequestAsyncHookHandler,
  onRequestHookHandler,
  preHandlerAsyncHookHandler
} from 'fastify'
import fp from 'fastify-plugin'
import rateLimitPlugin, {
  normalizeIP,
  type errorResponseBuilderContext,
  type FastifyRateLimitStore,
  type FastifyRateLimitStoreCtor
} from '@fastify/rate-limit'
import { FaultlineError, type FaultlineRecord } from '@faultline/core'
import { periodAt, type PeriodWindow } from './calendar-period.js'
import { StoreUnavailableError, type CounterStore } from './counter-store.js'
import { MemoryCounterStore } from './memory-store.js'
import { createRedisClient, RedisCounterStore, type CountPair } from './redis-store.js'
import { validateOptions, type FaultlineQuotaOptions, type QuotaSettings } from './options.js'

export interface FaultlineQuota {
  /** The validated settings of this registration. */
  readonly settings: Readonly<QuotaSettings>
  /** The rate limit's store (a MemoryCounterStore or the shared RedisCounterStore), when a rate limit is set. */
  readonly rateLimitStore: CounterStore | undefined
  /** The quota's store, when a quota is set (the same RedisCounterStore as the rate limit's with Redis). */
  readonly quotaStore: CounterStore | undefined
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The quota plugin registered in this scope: settings and stores. */
    faultlineQuota: FaultlineQuota
  }
  interface FastifyContextConfig {
    /** `false`: this route counts against no quota. (`rateLimit: false` likewise skips the rate limit.) */
    quota?: false
  }
}

const PREFIX = '@faultline/quota'
/**
 * A quota counter outlives its period by this much in the store, so a gateway whose clock is a
 * little behind still finds it. The period id in the key is what resets the quota, not this.
 */
const QUOTA_GRACE_MS = 60_000
/** Most consumers whose counter keys an API keeps built (see consumerKeys). */
const KEY_MEMO_MAX = 10_000

/** One consumer's counter keys in one API. */
interface ConsumerKeys {
  /** The API's part of the keys they were built with. */
  readonly namespace: string
  readonly rateLimit: string
  /** The quota period `quota` was built for. */
  period: string
  quota: string
}

/**
 * Counts already taken for a request (rate limit and quota in one Redis script), waiting for
 * @fastify/rate-limit's hook to ask its store for the rate-limit count. The hook's keyGenerator
 * returns the token they wait under (handed to it while the hook starts: it calls keyGenerator
 * synchronously), and the store adapter takes them by that token. A failure is resolved, not
 * rejected, so no rejection goes unhandled when the hook never asks.
 */
const pairedCounts = new Map<string, Promise<CountPair | StoreUnavailableError>>()
let pairedSeq = 0
let handedToken: string | undefined

/** keyGenerator of a paired rate-limit hook: the token of the request whose hook is starting. */
function takeHandedToken (): string {
  const token = handedToken
  handedToken = undefined
  if (token === undefined) throw new Error(`${PREFIX}: the rate limit asked for its key outside the quota's hook`)
  return token
}

/** Adapts a CounterStore to @fastify/rate-limit's store interface. */
class RateLimitStoreAdapter implements FastifyRateLimitStore {
  private readonly memory: MemoryCounterStore | undefined

  /** `paired`: the key is a token of pairedCounts, the count already taken. Otherwise the key is the counter's. */
  constructor (private readonly store: CounterStore, private readonly paired: boolean) {
    this.memory = store instanceof MemoryCounterStore ? store : undefined
  }

  incr (key: string, cb: (err: Error | null, result?: { current: number, ttl: number }) => void, timeWindow: number): void {
    if (this.paired) {
      const counts = pairedCounts.get(key)
      pairedCounts.delete(key)
      if (counts === undefined) {
        cb(new Error(`${PREFIX}: no rate-limit count was taken for this request`))
        return
      }
      counts.then((taken) => { taken instanceof StoreUnavailableError ? cb(taken) : cb(null, taken.first) }, cb)
      return
    }
    if (this.memory !== undefined) {
      cb(null, this.memory.incrSync(key, timeWindow))
      return
    }
    this.store.incr(key, timeWindow).then((count) => cb(null, count), cb)
  }

  /** Per-route rate-limit options are refused at route registration, so there are no children. */
  child (): FastifyRateLimitStore {
    return this
  }
}

/** What each API hands the shared registration's `rateLimit(options)`: its own limits and store. */
interface ApiRateLimitOptions {
  max: number
  timeWindow: number | string
  keyGenerator: (request: FastifyRequest) => string
  errorResponseBuilder: typeof rateLimitError
  skipOnError: false
  faultlineStore: CounterStore
  /** The counts are taken before the hook runs (see pairedCounts). */
  faultlinePaired: boolean
}
type RateLimitFactory = (options: ApiRateLimitOptions) => preHandlerAsyncHookHandler

/**
 * The store of the one registration every API of an app shares: it only makes children, one per
 * API, from the store and prefix the API passed to `rateLimit(options)`.
 */
class SharedRateLimitStore implements FastifyRateLimitStore {
  incr (_key: string, cb: (err: Error | null) => void): void {
    cb(new Error(`${PREFIX}: the shared rate-limit registration has no limits of its own`))
  }

  child (params: unknown): FastifyRateLimitStore {
    const { faultlineStore, faultlinePaired } = params as ApiRateLimitOptions
    return new RateLimitStoreAdapter(faultlineStore, faultlinePaired)
  }
}

/**
 * @fastify/rate-limit registered once per app (per server), its `rateLimit(options)` then used by
 * every API. One registration per API gave each API's requests a property of their own (the
 * plugin marks a request with a symbol made per registration): with 1,000 APIs and traffic spread
 * over them, every request/reply access in Fastify's hot path met a thousand shapes (bench/).
 */
const sharedRateLimits = new WeakMap<object, RateLimitFactory>()

async function sharedRateLimit (fastify: FastifyInstance): Promise<RateLimitFactory> {
  const known = sharedRateLimits.get(fastify.server)
  if (known !== undefined) return known
  let made: RateLimitFactory | undefined
  // In a scope of its own: its decorators stay there. The scope lives as long as the app.
  await fastify.register(async function faultlineSharedRateLimit (child) {
    await child.register(rateLimitPlugin, { global: false, store: SharedRateLimitStore as unknown as FastifyRateLimitStoreCtor })
    made = child.rateLimit as unknown as RateLimitFactory
  })
  const factory = made as RateLimitFactory
  sharedRateLimits.set(fastify.server, factory)
  return factory
}

/** The RLT error @fastify/rate-limit throws: the core answers it (429, the flag, the headers). */
function rateLimitError (_request: FastifyRequest, context: errorResponseBuilderContext): FaultlineError {
  const seconds = Math.ceil(context.ttl / 1000)
  return new FaultlineError('RLT', {
    headers: {
      'retry-after': seconds,
      'x-ratelimit-limit': context.max,
      'x-ratelimit-remaining': 0,
      'x-ratelimit-reset': seconds
    }
  })
}

/** One API's rate limit and quota: the settings, the stores, and the hook for its routes. */
export interface ApiQuotaHooks {
  readonly view: FaultlineQuota
  /**
   * The onRequest hook for a route the rate limit and/or the quota apply to (both, unless one is
   * turned off for the route); undefined when neither applies.
   */
  hookFor: (route?: { rateLimit?: boolean, quota?: boolean }) => onRequestHookHandler | onRequestAsyncHookHandler | undefined
}

/**
 * The rate limit and quota of one API, for routes that share a scope with other APIs' routes (as
 * in @faultline/gateway): the plugin below adds the same hook to the routes of its scope.
 * `apiPrefix` names the API in counter keys when a request has no API name. Lifecycle hooks (the
 * store's) go to `scope`, and @fastify/rate-limit is registered once per server in a child scope;
 * no request hook or decorator is added to `scope`.
 */
export async function createApiQuota (scope: FastifyInstance, options: FaultlineQuotaOptions, apiPrefix: string = scope.prefix): Promise<ApiQuotaHooks> {
  const settings = validateOptions(options)
  const { rateLimit, quota, failMode, keyPrefix, clock } = settings
  const log = scope.log

  if (rateLimit === undefined && quota === undefined) {
    // Nothing to enforce: no store, no hook.
    return { view: { settings, rateLimitStore: undefined, quotaStore: undefined }, hookFor: () => undefined }
  }

  // Stores: one shared Redis store for both, or one bounded memory store each.
  let rateLimitStore: CounterStore | undefined
  let quotaStore: CounterStore | undefined
  const redis = settings.redis
  if (redis !== undefined) {
    const client = redis.kind === 'url' ? createRedisClient(redis) : redis.client
    const shared = new RedisCounterStore({
      client,
      owned: redis.kind === 'url',
      target: redis.target,
      onStateChange (available, reason, err) {
        if (available) {
          log.warn({ store_target: redis.target }, 'faultline: the rate-limit store answers again; limits are enforced')
        } else {
          log.error({ store_target: redis.target, reason, fail_mode: failMode, err }, failMode === 'open'
            ? 'faultline: the rate-limit store is unavailable; requests go through unlimited (rate_limit_degraded)'
            : 'faultline: the rate-limit store is unavailable; requests are refused (RLE)')
        }
      }
    })
    scope.addHook('onClose', async () => { await shared.close() })
    await shared.connect()
    if (rateLimit !== undefined) rateLimitStore = shared
    if (quota !== undefined) quotaStore = shared
  } else {
    if (rateLimit !== undefined) rateLimitStore = new MemoryCounterStore({ maxKeys: settings.cacheMax, clock })
    if (quota !== undefined) quotaStore = new MemoryCounterStore({ maxKeys: settings.cacheMax, clock })
  }
  const sharedStore = rateLimitStore !== undefined && rateLimitStore === quotaStore

  // Keys: prefix, kind, API (URI-encoded: it cannot contain ':'), then who. Two APIs never share a counter.
  const fallbackApi = apiPrefix === '' ? '/' : apiPrefix
  let lastApi: string | undefined
  let lastNamespace = ''
  function apiNamespace (record: FaultlineRecord | null): string {
    const api = record?.api_name ?? fallbackApi
    if (api !== lastApi) {
      lastApi = api
      lastNamespace = encodeURIComponent(api)
    }
    return lastNamespace
  }

  /**
   * A consumer's counter keys, built on its first request rather than on each: its requests then
   * find their counters by a string whose hash is already known (the auth plugins name a consumer
   * with the same string each time). Keys per client IP are built per request. Emptied when it
   * reaches KEY_MEMO_MAX.
   */
  const consumerKeys = new Map<string, ConsumerKeys>()
  function keysOf (consumer: string, namespace: string): ConsumerKeys {
    let keys = consumerKeys.get(consumer)
    if (keys === undefined || keys.namespace !== namespace) {
      if (consumerKeys.size >= KEY_MEMO_MAX) consumerKeys.clear()
      keys = { namespace, rateLimit: keyPrefix + 'rl:' + namespace + ':c:' + consumer, period: '', quota: '' }
      consumerKeys.set(consumer, keys)
    }
    return keys
  }

  function storeFailed (record: FaultlineRecord | null, err: StoreUnavailableError, source: 'RateLimit' | 'Quota'): void {
    if (failMode === 'closed') throw new FaultlineError('RLE', { source, target: err.target, cause: err.cause })
    if (record !== null) record.rate_limit_degraded = true
  }

  // The rate limit: @fastify/rate-limit's hook (its headers, our RLT error, our store), built from
  // the app's one shared registration with this API's limits.
  const byConsumer = rateLimit?.key === 'consumer'
  /** `<prefix>rl:<api>:c:<consumer>`, or `...:ip:<client ip>` when there is none (or the limit is per IP). */
  function rateLimitKey (request: FastifyRequest, record: FaultlineRecord | null): string {
    const namespace = apiNamespace(record)
    const consumer = byConsumer ? record?.consumer : undefined
    if (consumer !== undefined) return keysOf(consumer, namespace).rateLimit
    return keyPrefix + 'rl:' + namespace + ':ip:' + normalizeIP(request.ip)
  }
  let rateLimitHook: preHandlerAsyncHookHandler | undefined
  // With one Redis store for both, the hook for routes with rate limit and quota: its counts are
  // taken by one script before it runs (enforceBothInOneTrip).
  let pairedRateLimitHook: preHandlerAsyncHookHandler | undefined
  if (rateLimit !== undefined && rateLimitStore !== undefined) {
    const createHook = await sharedRateLimit(scope)
    const hookOptions = {
      max: rateLimit.max,
      timeWindow: rateLimit.timeWindow,
      keyGenerator (request: FastifyRequest): string {
        return rateLimitKey(request, request.faultline)
      },
      errorResponseBuilder: rateLimitError,
      // Store failures reach our hook as errors, where failMode decides (skipOnError would hide them).
      skipOnError: false,
      faultlineStore: rateLimitStore,
      faultlinePaired: false
    } as const
    rateLimitHook = createHook(hookOptions)
    if (sharedStore) pairedRateLimitHook = createHook({ ...hookOptions, keyGenerator: takeHandedToken, faultlinePaired: true })
  }

  /** Runs a rate-limit hook; resolves true when its store failed (failMode open: the request goes on). */
  async function limitRate (request: FastifyRequest, reply: FastifyReply, hook: preHandlerAsyncHookHandler): Promise<boolean> {
    try {
      await hook.call(scope, request, reply)
      return false
    } catch (err) {
      if (!(err instanceof StoreUnavailableError)) throw err
      storeFailed(reply.faultline, err, 'RateLimit')
      return true
    }
  }

  let period: PeriodWindow | undefined
  function periodOf (now: number): PeriodWindow {
    if (period === undefined || now >= period.end || now < period.start) period = periodAt((quota as NonNullable<QuotaSettings['quota']>).period, now)
    return period
  }
  /** `<prefix>q:<api>:<period>:c:<consumer>`, or `...:ip:<client ip>` without a consumer. */
  function quotaKey (request: FastifyRequest, record: FaultlineRecord | null, window: PeriodWindow): string {
    const namespace = apiNamespace(record)
    const consumer = record?.consumer
    if (consumer === undefined) return keyPrefix + 'q:' + namespace + ':' + window.id + ':ip:' + normalizeIP(request.ip)
    const keys = keysOf(consumer, namespace)
    if (keys.period !== window.id) {
      keys.period = window.id
      keys.quota = keyPrefix + 'q:' + namespace + ':' + window.id + ':c:' + consumer
    }
    return keys.quota
  }
  /** The quota's headers for a count taken at `now` in `window`; QEX once the quota is used up. */
  function applyQuota (reply: FastifyReply, current: number, window: PeriodWindow, now: number): void {
    const max = (quota as NonNullable<QuotaSettings['quota']>).max
    const reset = Math.ceil((window.end - now) / 1000)
    const remaining = current >= max ? 0 : max - current
    reply.header('x-quota-limit', max)
    reply.header('x-quota-remaining', remaining)
    reply.header('x-quota-reset', reset)
    if (current > max) {
      throw new FaultlineError('QEX', {
        headers: { 'x-quota-limit': max, 'x-quota-remaining': 0, 'x-quota-reset': reset }
      })
    }
  }

  /** Counts the request against the consumer's quota for the current period; QEX once it is used up. */
  async function checkQuota (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const record = reply.faultline
    const now = clock()
    const window = periodOf(now)
    let current: number
    try {
      current = (await (quotaStore as CounterStore).incr(quotaKey(request, record, window), window.end - now + QUOTA_GRACE_MS)).current
    } catch (err) {
      if (!(err instanceof StoreUnavailableError)) throw err
      storeFailed(record, err, 'Quota')
      return
    }
    applyQuota(reply, current, window, now)
  }

  async function enforceRateLimit (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    await limitRate(request, reply, rateLimitHook as preHandlerAsyncHookHandler)
  }

  async function enforceQuota (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    await checkQuota(request, reply)
  }

  // Without Redis both stores are in memory: they never fail and count synchronously, so their
  // hooks take no detour through failMode and no promise of their own (callback hooks; the rate
  // limit's hook is @fastify/rate-limit's). With Redis one store holds both: see enforceBothInOneTrip.
  const memoryQuota = quotaStore instanceof MemoryCounterStore ? quotaStore : undefined
  const memoryRateLimit = rateLimitStore instanceof MemoryCounterStore

  /** checkQuota on the memory store, synchronously. */
  function countQuota (request: FastifyRequest, reply: FastifyReply): void {
    const now = clock()
    const window = periodOf(now)
    applyQuota(reply, (memoryQuota as MemoryCounterStore).incrSync(quotaKey(request, reply.faultline, window), window.end - now + QUOTA_GRACE_MS).current, window, now)
  }

  function enforceQuotaInMemory (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
    try {
      countQuota(request, reply)
    } catch (err) {
      done(err as Error)
      return
    }
    done()
  }

  function enforceBothInMemory (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
    (rateLimitHook as preHandlerAsyncHookHandler).call(scope, request, reply).then(() => {
      // A request the rate limit refuses rejects above and never reaches the quota.
      enforceQuotaInMemory(request, reply, done)
    }, done)
  }

  /**
   * Rate limit and quota in one Redis round trip: the script counts the rate limit, and the quota
   * only when the rate limit admits the request. @fastify/rate-limit's hook then runs
   * as usual (its headers, its RLT) on the count already taken.
   */
  async function enforceBothInOneTrip (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const record = reply.faultline
    const limit = rateLimit as NonNullable<QuotaSettings['rateLimit']>
    const now = clock()
    const window = periodOf(now)
    const counts = (rateLimitStore as RedisCounterStore).incrPair(
      rateLimitKey(request, record), limit.timeWindow, limit.max,
      quotaKey(request, record, window), window.end - now + QUOTA_GRACE_MS
    ).catch((err: StoreUnavailableError) => err)
    const token = 'pair:' + String(++pairedSeq)
    pairedCounts.set(token, counts)
    // The hook asks for its key before its first await: the token is handed over synchronously.
    handedToken = token
    const limited = limitRate(request, reply, pairedRateLimitHook as preHandlerAsyncHookHandler)
    handedToken = undefined
    let storeDown: boolean
    try {
      storeDown = await limited
    } finally {
      pairedCounts.delete(token)
    }
    // The store failed: limitRate applied failMode (the quota's count failed with it, no second wait).
    if (storeDown) return
    const taken = await counts
    if (taken instanceof StoreUnavailableError || taken.second === undefined) return
    applyQuota(reply, taken.second.current, window, now)
  }

  return {
    view: { settings, rateLimitStore, quotaStore },
    hookFor (route) {
      const limited = rateLimitHook !== undefined && route?.rateLimit !== false
      const counted = quota !== undefined && route?.quota !== false
      if (!limited && !counted) return undefined
      if (!limited) return memoryQuota !== undefined ? enforceQuotaInMemory : enforceQuota
      if (!counted) return memoryRateLimit ? rateLimitHook : enforceRateLimit
      // Both: one Redis store for the two (paired), or two memory stores.
      return pairedRateLimitHook !== undefined ? enforceBothInOneTrip : enforceBothInMemory
    }
  }
}

async function faultlineQuota (fastify: FastifyInstance, options: FaultlineQuotaOptions): Promise<void> {
  if (Object.hasOwn(fastify, 'faultlineQuota')) {
    throw new Error(`${PREFIX}: registered twice in the same scope; register it once per API scope`)
  }
  if ((options as { rateLimit?: unknown } | undefined)?.rateLimit !== undefined && fastify.hasDecorator('rateLimit')) {
    throw new Error(`${PREFIX}: @fastify/rate-limit is already registered in a parent scope; ` +
      'its decorators would shadow the one this plugin registers. Use one or the other for these routes.')
  }
  const api = await createApiQuota(fastify, options)
  fastify.decorate('faultlineQuota', api.view)
  if (api.view.rateLimitStore === undefined && api.view.quotaStore === undefined) return

  // Route-level onRequest hooks run after the scope's hooks, so after auth has named the consumer,
  // whatever the registration order. Routes that opt out get no hook at all.
  fastify.addHook('onRoute', (routeOptions) => {
    const config = routeOptions.config as { rateLimit?: unknown, quota?: unknown } | undefined
    if (config?.rateLimit != null && config.rateLimit !== false) {
      throw new TypeError(`${PREFIX}: route ${routeOptions.method.toString()} ${routeOptions.url}: config.rateLimit may only be false ` +
        '(per-route rate-limit options are not supported; register another scope with its own options)')
    }
    const hook = api.hookFor({ rateLimit: config?.rateLimit !== false, quota: config?.quota !== false })
    if (hook === undefined) return
    const existing = routeOptions.onRequest
    if (existing === undefined || existing === null) routeOptions.onRequest = [hook]
    else if (Array.isArray(existing)) routeOptions.onRequest = [...existing, hook]
    else routeOptions.onRequest = [existing as onRequestHookHandler, hook as onRequestHookHandler]
  })
}

export const faultlineQuotaPlugin: FastifyPluginAsync<FaultlineQuotaOptions> = fp(faultlineQuota, {
  fastify: '5.x',
  name: '@faultline/quota',
  dependencies: ['@faultline/core']
})
