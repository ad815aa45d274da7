/**
 * The upstream proxy: one registration per API, under the API's prefix (or `registerProxyApi` for
 * APIs that share one scope, as in @faultline/gateway). Proxies with
 * @fastify/reply-from over our own undici Agent (TLS verified, timeouts enforced, no silent
 * retries), and classifies every upstream failure on the request's record.
 */
import type { IncomingHttpHeaders, ServerResponse } from 'node:http'
import { performance } from 'node:perf_hooks'
import type { Readable } from 'node:stream'
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest, HookHandlerDoneFunction, HTTPMethods, onRequestAsyncHookHandler, onRequestHookHandler } from 'fastify'
import fp from 'fastify-plugin'
import replyFrom, { type FastifyReplyFromHooks } from '@fastify/reply-from'
import { Agent, Pool, type Dispatcher } from 'undici'
import {
  applyClassification,
  classifyTransportError,
  FaultlineError,
  isFaultlineError,
  kApiTargets,
  kRouteConfig,
  kUpstreamStart,
  stacklessFaultlineError,
  roundMs,
  type FaultlineRecord
} from '@faultline/core'
import { Balancer, parseTarget, type Target } from './balancer.js'
import type { FaultlineProxyOptions } from './options.js'
import { validateProxyOptions, type ProxySettings } from './validate-options.js'
import { poolSettingsKey, SharedPools } from './shared-pools.js'
import { buildVerifyingConnector } from './verifying-connector.js'
import { decideRetry, type RetryRequest } from './retry-policy.js'
import { checkRequestHead, compileSchema, prepareBody, type BodyPolicy } from './request-body.js'
import { CompleteBody, UpstreamExchange, type ExchangeCallback, type ExchangeOwner } from './upstream-exchange.js'

/** A read-only view of the API's balancer (metrics, health endpoints): decorated in the proxy's scope. */
export interface FaultlineTargets {
  /** The API's name. */
  readonly apiName: string
  /** Each target's `host:port` and whether the balancer considers it healthy now. */
  list: () => ReadonlyArray<{ readonly address: string, readonly healthy: boolean }>
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The upstream target chosen for this request by the proxy. */
    faultlineUpstream: Target | null
  }
  interface FastifyInstance {
    /** The balancer of the proxy registered in this scope (visible to its routes and their hooks). */
    faultlineTargets: FaultlineTargets
  }
}

const kFailed = Symbol('faultline.proxy.failed')
/** The record's ExchangeOwner: whether its client left, and the upstream attempt in flight. */
const kExchange = Symbol('faultline.proxy.exchange')
const kReply = Symbol('faultline.proxy.reply')
const kDispatch = Symbol('faultline.proxy.dispatch')
/** Route config key of the API's body policy, for the scope's one body parser. */
const kBodyPolicy = Symbol('faultline.proxy.bodyPolicy')

type ProxiedRecord = FaultlineRecord & { [kFailed]?: boolean, [kExchange]?: ExchangeOwner }
type HeadersWithReply = IncomingHttpHeaders & { [kReply]?: FastifyReply, [kDispatch]?: (opts: Dispatcher.RequestOptions, callback: ExchangeCallback) => void }
type StreamWithReply = Readable & { [kReply]?: FastifyReply }
type ResponseWithReply = ServerResponse & { [kReply]?: FastifyReply }

/** The client went away before its response completed: stop waiting on the upstream for it. */
function onClientClose (this: ResponseWithReply): void {
  const reply = this[kReply]
  this[kReply] = undefined
  if (reply === undefined || this.writableFinished) return
  const owner = (reply.faultline as ProxiedRecord | null)?.[kExchange]
  if (owner === undefined) return
  // Also stops an attempt that has not started yet (a retry waiting for its delay).
  owner.cancelled = true
  owner.exchange?.cancel()
}

function upstreamElapsed (record: ProxiedRecord): number | undefined {
  const start = record[kUpstreamStart]
  return start === undefined ? undefined : roundMs(performance.now() - start)
}

/** An onRequest hook of an API's routes, callback or async. */
export type RouteHook = onRequestHookHandler | onRequestAsyncHookHandler

function withoutTrailingSlash (path: string): string {
  let end = path.length
  while (end > 0 && path[end - 1] === '/') end--
  return path.slice(0, end)
}

/** The body policy of a request's API (the core keeps the route config on the record). */
function bodyPolicyOf (request: FastifyRequest): BodyPolicy {
  const config = request.faultline?.[kRouteConfig] ?? (request.routeOptions.config as unknown as Record<symbol, unknown>)
  return config[kBodyPolicy] as BodyPolicy
}

/** reply-from's one dispatcher per scope: each attempt goes to its API's (set in its request headers). */
const dispatcher = {
  request (opts: Dispatcher.RequestOptions, callback: ExchangeCallback): void {
    const dispatch = (opts.headers as HeadersWithReply)[kDispatch]
    if (dispatch !== undefined) dispatch(opts, callback)
    else callback(new Error('@faultline/proxy: an upstream request without its API'))
  }
}

const preparedScopes = new WeakSet<FastifyInstance>()

/** Once per scope: reply-from over the dispatcher above, and the pass-through body parser. */
function prepareProxyScope (scope: FastifyInstance): void {
  if (preparedScopes.has(scope)) return
  preparedScopes.add(scope)
  // `request.faultlineUpstream` is declared by @faultline/core, for the whole app.
  scope.register(replyFrom, { undici: dispatcher as unknown as { request: Dispatcher['request'] }, disableRequestLogging: true })
  // Bodies stream through to the upstream untouched (limited when their size was not declared).
  scope.removeAllContentTypeParsers()
  scope.addContentTypeParser('*', function passThrough (request, payload, next) {
    prepareBody(request, payload, bodyPolicyOf(request)).then((body) => next(null, body), next)
  })
}

/** Where an API's routes are added, and what runs around the proxy's own onRequest hook. */
export interface ProxyRouteOptions {
  /**
   * The API's path prefix within `scope` (default `''`: the scope's own prefix is the API's). Its
   * routes are the prefix itself and everything under it.
   */
  prefix?: string
  /** onRequest hooks that run before the proxy checks the request head (auth, breaker). */
  before?: RouteHook[]
  /** onRequest hooks that run after it (rate limit and quota). */
  after?: RouteHook[]
  /** More route config for the API's routes (e.g. its breaker view under `kApiBreaker`). */
  config?: Record<string | symbol, unknown>
}

/**
 * One Set per list of methods, shared by every API that proxies the same methods: requests to
 * 1,000 APIs read one Set that stays in the cache, not 1,000 (bench/callgrind.mjs: their lookups
 * missed a 2 MiB cache about 5 times a request with traffic spread over all). Never mutated.
 */
const methodSets = new Map<string, ReadonlySet<string>>()

function methodSet (methods: readonly string[]): ReadonlySet<string> {
  const key = methods.join(',')
  let set = methodSets.get(key)
  if (set === undefined) {
    set = new Set(methods)
    methodSets.set(key, set)
  }
  return set
}

/**
 * Adds one API's proxy routes to `scope`, which may hold other APIs' routes too (as in
 * @faultline/gateway, where every API shares one scope, so every request has the same shape
 * whatever its API). The first call in a scope registers @fastify/reply-from there and replaces
 * the scope's body parsers with the proxy's pass-through; each API's routes carry their own
 * settings, balancer and hooks. The plugin below is this function in a scope of its own.
 */
export function registerProxyApi (scope: FastifyInstance, options: FaultlineProxyOptions, routes: ProxyRouteOptions = {}): FaultlineTargets {
  const settings: ProxySettings = validateProxyOptions(options)
  const { upstream } = settings
  const log = scope.log
  const requestIdHeader = scope.faultline.settings.requestIdHeader
  prepareProxyScope(scope)

  const dispatcherOptions = {
    connect: buildVerifyingConnector({ tls: upstream.tls, connectTimeout: upstream.connectTimeout, lookup: upstream.lookup }),
    headersTimeout: upstream.responseTimeout,
    bodyTimeout: upstream.responseTimeout
  }
  // The Agent is for what the pools below do not cover: health probes, and an origin without a
  // pool. Made when first needed: 1,000 APIs without health checks made 1,000 Agents for nothing.
  let agent: Agent | undefined
  const agentFor = (): Agent => (agent ??= new Agent(dispatcherOptions))
  const targets = upstream.targets.map(parseTarget)
  // Requests go through one Pool per target origin rather than through the Agent: the Agent drops
  // an origin's pool whenever a connection to it fails, so with a refused upstream it built a new
  // Pool and Client for every request (the UCF path cost twice the success path; bench/).
  // APIs of this server with the same upstream settings share those pools (shared-pools.ts).
  const sharedPools = new SharedPools(scope.server)
  const settingsKey = poolSettingsKey(upstream)
  const pools = new Map<string, Pool>()
  for (const target of targets) {
    if (!pools.has(target.origin)) pools.set(target.origin, sharedPools.acquire(target.origin, settingsKey, () => new Pool(target.origin, dispatcherOptions)))
  }
  const balancer = new Balancer(targets, upstream.healthCheck, (target, healthy, reason) => {
    log.warn({ api_name: settings.name, upstream_addr: target.address, healthy, reason }, healthy ? 'faultline: upstream target healthy again' : 'faultline: upstream target marked unhealthy')
  }, upstream.refusedBackoff)

  // reply-from hands every attempt to the scope's dispatcher, which hands it here: count attempts
  // where they happen.
  function dispatch (opts: Dispatcher.RequestOptions, callback: ExchangeCallback): void {
    const headers = opts.headers as HeadersWithReply
    const reply = headers[kReply]
    let owner: ExchangeOwner | null = null
    if (reply !== undefined) {
      // Not `delete`: that would turn this attempt's headers into a dictionary before undici
      // reads them. undici only reads string keys.
      headers[kReply] = undefined
      const record = reply.faultline as ProxiedRecord | null
      if (record !== null) {
        record.upstream_attempts = (record.upstream_attempts ?? 0) + 1
        owner = record[kExchange] ?? null
      }
    }
    const exchange = new UpstreamExchange(opts.method, opts.body, owner, callback)
    const pool = pools.get(String(opts.origin))
    if (pool !== undefined) pool.dispatch(opts, exchange)
    else agentFor().dispatch(opts, exchange)
  }

  function rewriteRequestHeaders (request: FastifyRequest, headers: IncomingHttpHeaders): IncomingHttpHeaders {
    const reply = (request as FastifyRequest & { [kReply]?: FastifyReply })[kReply]
    const out = headers as HeadersWithReply
    if (reply !== undefined) {
      const record = reply.faultline as ProxiedRecord | null
      if (record !== null) {
        record[kUpstreamStart] = performance.now()
        out[requestIdHeader] = record.request_id
      }
      out[kReply] = reply
    }
    out[kDispatch] = dispatch
    const forwarded = headers['x-forwarded-for']
    const ip = request.ip
    out['x-forwarded-for'] = typeof forwarded === 'string' && forwarded.length > 0 ? `${forwarded}, ${ip}` : ip
    return out
  }

  function getUpstream (request: FastifyRequest): string {
    return (request.faultlineUpstream as Target).origin
  }

  function retryDelay (details: { err: Error | null, req: unknown, res: unknown, attempt: number }): number | null {
    const req = details.req as RetryRequest & { headers: HeadersWithReply }
    const reply = req.headers[kReply]
    const delay = decideRetry(details.err, details.res, req, details.attempt, upstream.retries)
    if (delay === null || reply === undefined) return delay
    // Retry on the next healthy target when there is one.
    const failed = reply.request.faultlineUpstream
    const record = reply.faultline
    const c = classifyTransportError(details.err)
    if (failed !== null && c !== undefined) balancer.reportFailure(failed, c)
    const next = balancer.pick()
    if (next !== undefined && next !== failed && req.url instanceof URL) {
      reply.request.faultlineUpstream = next
      req.url = new URL(next.basePath + req.url.pathname.slice(failed?.basePath.length ?? 0), next.origin)
      req.headers.host = req.url.host
      if (record !== null) record.upstream_addr = next.address
    }
    req.headers[kReply] = reply
    return delay
  }

  function onUpstreamBodyError (this: StreamWithReply, err: Error): void {
    const reply = this[kReply]
    if (reply === undefined) return
    this[kReply] = undefined
    const record = reply.faultline as ProxiedRecord | null
    // The client going away destroys the upstream stream too: that is CDC, decided by the core.
    if (record === null || reply.raw.destroyed) return
    const c = classifyTransportError(err) ?? { flag: 'URR', details: 'upstream_closed_connection' }
    record.upstream_latency = upstreamElapsed(record)
    applyClassification(record, { flag: c.flag, details: c.details, target: record.upstream_addr })
    const target = reply.request.faultlineUpstream
    if (target !== null) balancer.reportFailure(target, c)
  }

  function onResponse (request: FastifyRequest, reply: FastifyReply, res: { statusCode: number, stream: Readable | CompleteBody }): void {
    const record = reply.faultline as ProxiedRecord | null
    if (record === null) return
    record.upstream_status = res.statusCode
    if (record[kFailed] === true) {
      // reply-from already reported an invalid status through onError and still calls us.
      res.stream.destroy()
      return
    }
    record.upstream_latency = upstreamElapsed(record)
    record.response_source = 'upstream'
    const target = request.faultlineUpstream
    if (target !== null) balancer.reportSuccess(target)
    if (res.statusCode >= 500) {
      applyClassification(record, { flag: 'URS', target: record.upstream_addr, statusCode: res.statusCode })
    }
    if (res.stream instanceof CompleteBody) {
      // A small response, already complete (upstream-exchange.ts): one write, nothing to pipe.
      reply.send(res.stream.bytes)
      return
    }
    const stream = res.stream as StreamWithReply
    stream[kReply] = reply
    stream.once('error', onUpstreamBodyError)
    reply.send(stream)
  }

  function onError (reply: FastifyReply, { error }: { error: Error }): void {
    const record = reply.faultline as ProxiedRecord | null
    if (record !== null) {
      record[kFailed] = true
      record.upstream_latency = upstreamElapsed(record)
    }
    // The request body failed on our side (BTL while streaming): that flag, not a transport one.
    const cause = (error as { cause?: unknown }).cause
    if (isFaultlineError(cause)) {
      reply.send(cause)
      return
    }
    const c = classifyTransportError(error)
    if (c === undefined) {
      reply.send(error) // not a transport failure we know: the core logs it and answers GIE
      return
    }
    const target = reply.request.faultlineUpstream
    if (target !== null && c.flag !== 'CDC') balancer.reportFailure(target, c)
    const failure = stacklessFaultlineError(c.flag, {
      details: c.details,
      target: record?.upstream_addr,
      cause: error,
      fields: c.tlsCertExpiry !== undefined || c.tlsCertSubject !== undefined
        ? { tls_cert_expiry: c.tlsCertExpiry, tls_cert_subject: c.tlsCertSubject }
        : undefined
    })
    reply.send(failure)
  }

  // reply-from types its hooks for every server kind; the gateway runs HTTP/1 servers only.
  // The response's hop-by-hop headers are already gone (responseHeaders in upstream-exchange.ts).
  const fromOptions = {
    rewriteRequestHeaders,
    getUpstream,
    onResponse,
    onError,
    retryDelay
  } as unknown as FastifyReplyFromHooks

  const ownPrefix = withoutTrailingSlash(routes.prefix ?? '')
  // What the upstream does not see of the path: the scope's prefix and the API's.
  const prefix = withoutTrailingSlash(scope.prefix + ownPrefix)
  const bodyLimit = settings.bodyLimit ?? scope.initialConfig.bodyLimit ?? 1048576

  function upstreamPath (request: FastifyRequest): string {
    const url = request.raw.url ?? '/'
    const q = url.indexOf('?')
    const path = q === -1 ? url : url.slice(0, q)
    let rest: string
    if (path.startsWith(prefix)) rest = path.slice(prefix.length)
    else rest = '/' + encodeURI((request.params as { '*'?: string })['*'] ?? '')
    if (rest === '') rest = '/'
    else if (rest[0] !== '/') rest = '/' + rest
    return rest
  }

  // Returns nothing: reply-from answers later. A returned reply would be awaited as a thenable
  // (Fastify's wrapThenable, reply.then: end-of-stream listeners on every response, ~3 µs).
  function proxyHandler (request: FastifyRequest, reply: FastifyReply): void {
    const now = Date.now()
    const target = balancer.pick(now)
    if (target === undefined) throw new FaultlineError('NHU', { target: balancer.describe() })
    request.faultlineUpstream = target
    const record = reply.faultline as ProxiedRecord | null
    if (balancer.isHeld(target, now)) {
      // It refused a connection moments ago and no other target can be dialled: answer that refusal
      // again without dialling (no upstream_attempts, no upstream_latency on the line).
      if (record !== null) record.upstream_addr = target.address
      throw stacklessFaultlineError('UCF', { target: target.address })
    }
    if (record !== null) {
      record.upstream_addr = target.address
      record[kExchange] = { cancelled: false, exchange: null }
      const res = reply.raw as ResponseWithReply
      res[kReply] = reply
      // `on`, not `once`: no wrapper per request; the handler runs once (it clears its own slot).
      res.on('close', onClientClose)
    }
    ;(request as FastifyRequest & { [kReply]?: FastifyReply })[kReply] = reply
    try {
      reply.from(target.basePath + upstreamPath(request), fromOptions)
    } catch (err) {
      // reply-from refuses dot-segment paths and malformed percent-encoding before dialling.
      throw new FaultlineError('IHD', { details: 'invalid_path', cause: err })
    }
  }

  function methodNotAllowed (_request: FastifyRequest, reply: FastifyReply): void {
    reply.header('allow', settings.methods.join(', '))
    throw new FaultlineError('MNA')
  }

  const targetsView: FaultlineTargets = {
    apiName: settings.name,
    list: () => balancer.targets.map((t) => ({ address: t.address, healthy: t.healthy }))
  }
  const bodyPolicy: BodyPolicy = {
    bodyLimit,
    requireContentLength: settings.requireContentLength,
    contentTypes: settings.contentTypes,
    validate: settings.schema === undefined ? undefined : compileSchema(settings.schema)
  }

  // What the head says is checked before any body byte is read.
  function checkHead (request: FastifyRequest, _reply: FastifyReply, next: HookHandlerDoneFunction): void {
    next(checkRequestHead(request, bodyPolicy))
  }

  const routeConfig = {
    ...routes.config,
    apiName: settings.name,
    ...(settings.exposeFlag !== undefined ? { exposeFlag: settings.exposeFlag } : {}),
    ...(settings.accessLog !== undefined ? { accessLog: settings.accessLog } : {}),
    [kApiTargets]: targetsView,
    [kBodyPolicy]: bodyPolicy
  }
  const onRequest = [...(routes.before ?? []), checkHead, ...(routes.after ?? [])]
  // One route per URL for every method Fastify knows, the API's own methods proxied and the others
  // answered MNA: a route of its own for the others gave each URL a second Fastify context, with
  // its own bound copy of every hook of the scope (at 1,000 full-chain APIs, 2.4 MiB of heap).
  const methods = methodSet(settings.methods)
  function routeHandler (request: FastifyRequest, reply: FastifyReply): void {
    if (methods.has(request.raw.method as string)) proxyHandler(request, reply)
    else methodNotAllowed(request, reply)
  }
  // `${ownPrefix}/*` also matches `${ownPrefix}/` (an empty wildcard). Every URL here is a route
  // for each of Fastify's 9 methods: at 1,000 APIs a third URL cost 11 MiB of heap.
  const urls = ownPrefix === '' ? ['/', '/*'] : [ownPrefix, ownPrefix + '/*']
  for (const url of urls) {
    scope.route({ method: scope.supportedMethods as HTTPMethods[], url, handler: routeHandler, config: routeConfig, onRequest, exposeHeadRoute: false })
  }

  scope.addHook('onReady', (next) => {
    if (upstream.healthCheck !== undefined) balancer.startProbes(agentFor())
    next()
  })
  scope.addHook('onClose', (_instance, next) => {
    balancer.stop()
    // Clients are gone by now (the server closed first): nothing left is worth waiting for.
    Promise.allSettled([agent?.destroy(), ...[...pools.keys()].map(async (origin) => { await sharedPools.release(origin, settingsKey) })]).then(() => next(), () => next())
  })
  return targetsView
}

async function faultlineProxy (fastify: FastifyInstance, options: FaultlineProxyOptions): Promise<void> {
  fastify.decorate('faultlineTargets', registerProxyApi(fastify, options))
}

export const faultlineProxyPlugin: FastifyPluginAsync<FaultlineProxyOptions> = fp(faultlineProxy, {
  fastify: '5.x',
  name: '@faultline/proxy',
  dependencies: ['@faultline/core'],
  encapsulate: true
})
