/**
 * Composes a gateway from a config: Fastify with the server settings, the core, the access log,
 * and per API, under its prefix: auth, circuit breaker, rate limit and quota, proxy.
 */
import type { Server as HttpServer } from 'node:http'
import type { Server as HttpsServer } from 'node:https'
import Fastify, { LogController, type FastifyHttpOptions, type FastifyHttpsOptions, type FastifyInstance, type FastifyServerOptions } from 'fastify'
import pino, { type DestinationStream } from 'pino'
import faultlineCore, { clientErrorHandler, FaultlineError, frameworkErrors, kApiBreaker } from '@faultline/core'
import faultlineAccessLog, { type AccessLogOptions } from '@faultline/access-log'
import { registerProxyApi, type FaultlineProxyOptions, type RouteHook } from '@faultline/proxy'
import { createAuthHook } from '@faultline/auth'
import { createApiQuota, createRedisClient, type FaultlineQuotaOptions } from '@faultline/quota'
import { createApiBreaker } from '@faultline/breaker'
import faultlineMetrics, { type FaultlineMetricsOptions } from '@faultline/metrics'
import underPressure from '@fastify/under-pressure'
import {
  accessLogDefaults,
  serverDefaults,
  type AccessLogConfig,
  type ApiConfig,
  type GatewayConfigInput,
  type ServerConfig
} from './config/schema.js'
import { primeNextTick } from './runtime.js'

export interface BuildGatewayOptions {
  /** Where access lines go instead of `accessLog.destination` (tests, embedding). */
  accessLogDestination?: DestinationStream
  /**
   * The gateway's own log (errors of the gateway itself, never access lines). Default: level
   * `error` to stderr. `true`: level `info`. An object: pino options (`stream` defaults to stderr).
   * `false`: off.
   */
  logger?: boolean | Record<string, unknown>
}

/** `{ ...defaults, ...given }`, except that a key given as `undefined` keeps its default. */
function withDefaults<T extends object> (defaults: Readonly<T>, given: Partial<T> | undefined): T {
  const out = { ...defaults } as T
  if (given !== undefined) {
    for (const key of Object.keys(given) as Array<keyof T>) {
      if (given[key] !== undefined) out[key] = given[key] as T[keyof T]
    }
  }
  return out
}

export function resolveServerConfig (config: GatewayConfigInput): ServerConfig {
  return withDefaults<ServerConfig>(serverDefaults, config.server)
}

function appLogger (logger: BuildGatewayOptions['logger']): FastifyServerOptions['logger'] {
  if (logger === false) return false
  // stdout carries access lines only: the gateway's own log goes to stderr.
  const stream = pino.destination({ dest: 2, sync: true })
  if (logger === undefined) return { level: 'error', stream } as FastifyServerOptions['logger']
  if (logger === true) return { level: 'info', stream } as FastifyServerOptions['logger']
  return { level: 'error', stream, ...logger } as FastifyServerOptions['logger']
}

function checkingInterval (requestTimeout: number): number {
  return requestTimeout > 0 ? Math.max(100, Math.min(1000, Math.floor(requestTimeout / 4))) : 30_000
}

function proxyOptions (api: ApiConfig): FaultlineProxyOptions & { prefix: string } {
  const options: FaultlineProxyOptions & { prefix: string } = { prefix: api.prefix, name: api.name, upstream: api.upstream }
  if (api.methods !== undefined) options.methods = api.methods
  if (api.bodyLimit !== undefined) options.bodyLimit = api.bodyLimit
  if (api.accessLog !== undefined) options.accessLog = api.accessLog
  if (api.exposeFlag !== undefined) options.exposeFlag = api.exposeFlag
  if (api.requireContentLength !== undefined) options.requireContentLength = api.requireContentLength
  if (api.contentTypes !== undefined) options.contentTypes = api.contentTypes
  if (api.schema !== undefined) options.schema = api.schema
  return options
}

/**
 * Adds one API of a gateway config to `scope` (which may hold other APIs: each has its own routes,
 * hooks and state). The hooks run in the order a request meets the boundaries: who are you (auth),
 * is the upstream up (breaker), is the request well-formed (the proxy's head check), how much may
 * you (rate limit, then quota), go. `redis`: the client every API's counters share.
 */
export async function registerApi (scope: FastifyInstance, api: ApiConfig, shared: { redis?: ReturnType<typeof createRedisClient> } = {}): Promise<void> {
  // Before the first API's routes exist (see primeNextTick); at once after that.
  await primeNextTick()
  const { prefix, ...proxy } = proxyOptions(api)
  const before: RouteHook[] = []
  const after: RouteHook[] = []
  const config: Record<symbol, unknown> = {}
  if (api.auth !== undefined) before.push(await createAuthHook(scope, api.auth))
  if (api.circuitBreaker !== undefined) {
    // The name, not `api`: a closure over the config would keep all of it alive with the breaker
    // (a million API keys held 175 MiB of heap for as long as the gateway ran).
    const name = api.name
    const breaker = createApiBreaker(scope, { name, ...api.circuitBreaker }, () => name)
    for (const url of api.upstream.targets) breaker.addTarget(url)
    before.push(breaker.admit)
    config[kApiBreaker] = breaker.view
  }
  if (api.rateLimit !== undefined || api.quota !== undefined) {
    const quota: FaultlineQuotaOptions = {}
    if (api.rateLimit !== undefined) quota.rateLimit = api.rateLimit
    if (api.quota !== undefined) quota.quota = api.quota
    if (shared.redis !== undefined) quota.redis = shared.redis
    if (api.failMode !== undefined) quota.failMode = api.failMode
    const hook = (await createApiQuota(scope, quota, prefix)).hookFor()
    if (hook !== undefined) after.push(hook)
  }
  registerProxyApi(scope, proxy, { prefix, before, after, config })
}

/**
 * Builds the gateway's Fastify instance, ready (a Fastify instance is a thenable, so the promise
 * of one resolves once it has booted: plugin option errors reject here).
 */
export async function buildGateway (config: GatewayConfigInput, options: BuildGatewayOptions = {}): Promise<FastifyInstance> {
  const server = resolveServerConfig(config)
  const metricsPort = config.metrics?.port
  if (metricsPort !== undefined && metricsPort !== 0 && metricsPort === server.port) {
    throw new Error(`metrics.port ${metricsPort} is the gateway's own port (server.port): give the metrics another port, or leave it out to serve them on the gateway's port`)
  }
  const accessLog = withDefaults<AccessLogConfig>(accessLogDefaults, config.accessLog)

  const fastifyOptions: FastifyServerOptions = {
    logger: appLogger(options.logger),
    // Fastify's own per-request lines are off: the access log is the one line per request.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: server.bodyLimit,
    requestTimeout: server.requestTimeout,
    // Fastify's own 503-while-closing skips every hook, so the request would never be logged:
    // the gateway answers SHD itself (below) while it drains.
    return503OnClosing: false,
    // What Node's HTTP parser rejects gets the contract's error body and a request id.
    clientErrorHandler,
    // ...and so does a URL Fastify cannot decode (by default answered without hooks, echoing it).
    frameworkErrors
  }
  const tls = server.tls
  const app = (tls === undefined
    ? Fastify({
      ...fastifyOptions,
      // Node checks request deadlines every 30 s by default, so a 1 s requestTimeout could take
      // 31 s: check often enough for RTO to follow the setting.
      http: { connectionsCheckingInterval: checkingInterval(server.requestTimeout) }
    } as FastifyHttpOptions<HttpServer>)
    : Fastify({
      ...fastifyOptions,
      https: {
        cert: tls.cert,
        key: tls.key,
        ca: tls.ca,
        connectionsCheckingInterval: checkingInterval(server.requestTimeout),
        requestCert: tls.requestCert ?? false,
        // With mTLS APIs the handshake lets every client in, so that those APIs can answer CRQ/CMM
        // (and log it); without any, a client the CA does not vouch for fails the handshake.
        rejectUnauthorized: (tls.requestCert ?? false) && !config.apis.some((api) => api.auth?.type === 'mtls')
      }
    } as FastifyHttpsOptions<HttpsServer>)) as unknown as FastifyInstance

  await app.register(faultlineCore, { exposeFlag: server.exposeFlag, trustRequestId: server.trustRequestId })

  const accessLogOptions: AccessLogOptions = {
    enabled: accessLog.enabled,
    destination: options.accessLogDestination ?? accessLog.destination
  }
  if (accessLog.fields !== undefined) accessLogOptions.fields = accessLog.fields
  await app.register(faultlineAccessLog, accessLogOptions)

  // Metrics: registered before the APIs, whose routes tell it each API's breaker and balancer.
  const metrics = config.metrics
  if (metrics !== undefined && metrics.enabled !== false) {
    const metricsOptions: FaultlineMetricsOptions = { processMetrics: true }
    if (metrics.path !== undefined) metricsOptions.path = metrics.path
    if (metrics.port !== undefined) {
      metricsOptions.port = metrics.port
      metricsOptions.host = server.host
    }
    await app.register(faultlineMetrics, metricsOptions)
  }

  // Load shedding: when a threshold is crossed, new requests get OVL 503 with Retry-After.
  const shedding = server.loadShedding
  if (shedding !== undefined) {
    const retryAfter = shedding.retryAfter ?? 10
    class Overloaded extends FaultlineError {
      constructor () {
        super('OVL', { headers: { 'retry-after': retryAfter } })
      }
    }
    await app.register(underPressure, {
      maxEventLoopDelay: shedding.maxEventLoopDelay,
      maxHeapUsedBytes: shedding.maxHeapUsedBytes,
      maxRssBytes: shedding.maxRssBytes,
      maxEventLoopUtilization: shedding.maxEventLoopUtilization,
      sampleInterval: Math.max(50, shedding.sampleInterval ?? 1000),
      retryAfter,
      customError: Overloaded as unknown as new () => Error
    })
  }

  // Requests that arrive on an open connection once close() started get SHD and Connection: close.
  let draining = false
  app.addHook('preClose', (done) => {
    draining = true
    done()
  })
  app.addHook('onRequest', (_request, _reply, done) => {
    if (draining) done(new FaultlineError('SHD', { headers: { connection: 'close' } }))
    else done()
  })

  // One Redis connection for every API's counters (their keys are namespaced per API), closed
  // with the gateway. Connecting is lazy: a Redis that is down at start is failMode's business.
  const redis = config.redis === undefined
    ? undefined
    : createRedisClient({
      url: config.redis.url,
      commandTimeout: config.redis.commandTimeout ?? 500,
      connectTimeout: config.redis.connectTimeout ?? 1000
    })
  if (redis !== undefined) {
    app.addHook('onClose', async () => {
      if (redis.status !== 'ready') {
        redis.disconnect()
        return
      }
      // QUIT lets commands in flight finish.
      await redis.quit().catch(() => { redis.disconnect() })
    })
  }

  // Every API's routes in one scope, each carrying its own hooks and settings: Fastify gives each
  // encapsulated scope its own Request and Reply classes, and with a scope per API, traffic spread
  // over 1,000 APIs met 1,000 request shapes on every hot path (bench/).
  // The plugin takes the APIs from a slot it empties: Fastify keeps every registered plugin
  // function, so a closure over `config` would keep the whole config (every API key of it) alive.
  let apis: ApiConfig[] | undefined = config.apis
  await app.register(async function faultlineApis (scope) {
    const registering = apis ?? []
    apis = undefined
    for (const api of registering) await registerApi(scope, api, { redis })
  })
  await app.ready()
  return app
}
