/**
 * The circuit breaker of one API: registered in the API's scope before the proxy, it admits or
 * refuses each request in onRequest (CBO when open or half-open and busy, UOF when its capacity is
 * full) and judges each admitted request from its finished record (a core sink).
 */
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest, HookHandlerDoneFunction, onRequestHookHandler, RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import { stacklessFaultlineError, type FaultlineError, type FaultlineRecord } from '@faultline/core'
import {
  ADMITTED,
  ApiBreaker,
  kBreaker,
  REJECTED_CAPACITY,
  REJECTED_OPEN,
  type Admission,
  type AdmittedRecord,
  type BreakerStats,
  type CircuitBreakerState
} from './api-breaker.js'
import { validateBreakerOptions, type FaultlineBreakerOptions } from './options.js'

/** The breaker of a scope, for metrics, health endpoints and tests. */
export interface FaultlineBreaker {
  /** The breaker's name (option `name`, else the API's name). */
  readonly name: string
  readonly state: CircuitBreakerState
  /** Admitted requests not finished yet (what `capacity` limits). */
  readonly inFlight: number
  /** Comma-separated `host:port` of the API's targets, as written to `error_target`. */
  readonly targets: string | undefined
  /** Judged requests in the rolling window (inconclusive ones are not in it). */
  stats: () => BreakerStats
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The breaker guarding this scope's routes; decorated where @faultline/breaker is registered. */
    faultlineBreaker: FaultlineBreaker
  }
}

const OPEN_FIELDS = Object.freeze({ circuit_breaker_state: 'open' })
const HALF_OPEN_FIELDS = Object.freeze({ circuit_breaker_state: 'half_open' })

// One sink per core, whatever the number of breakers: it hands each record to the breaker that
// admitted it, so a request costs the same with one API or a thousand.
const coresWithSink = new WeakSet<object>()

function breakerSink (record: FaultlineRecord): void {
  const breaker = (record as AdmittedRecord)[kBreaker]
  if (breaker !== undefined) breaker.settle(record)
}

/** `host:port` of a proxy target URL, as the proxy writes it to upstream_addr. */
function targetAddress (url: unknown): string | undefined {
  if (typeof url !== 'string') return undefined
  try {
    const u = new URL(url)
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return undefined
    return `${u.hostname}:${u.port !== '' ? u.port : (u.protocol === 'https:' ? '443' : '80')}`
  } catch {
    return undefined
  }
}

/** One API's breaker: its admission hook, its view, and where its targets are declared. */
export interface ApiBreakerHooks {
  /** The onRequest hook that admits or refuses (CBO, UOF) each request of the API. */
  readonly admit: onRequestHookHandler
  readonly view: FaultlineBreaker
  /** Adds a target URL (`upstream.targets` of the proxy) to what `error_target` names. */
  addTarget: (url: string) => void
}

/**
 * The circuit breaker of one API, for routes that share a scope with other APIs' routes (as in
 * @faultline/gateway): the plugin below adds the same hook to its scope. `apiName` names the API
 * in the breaker's log lines (asked when it logs, so a plugin can learn it from its routes later).
 * Lifecycle hooks go to `scope`; no request hook or decorator does.
 */
export function createApiBreaker (scope: FastifyInstance, options: FaultlineBreakerOptions, apiName: () => string): ApiBreakerHooks {
  const settings = validateBreakerOptions(options)
  const breaker = new ApiBreaker(settings, scope.log, { apiName })

  function rejection (verdict: Admission): FaultlineError {
    if (verdict === REJECTED_CAPACITY) return stacklessFaultlineError('UOF', { target: breaker.targets })
    return stacklessFaultlineError('CBO', {
      target: breaker.targets,
      headers: { 'retry-after': breaker.retryAfter() },
      fields: verdict === REJECTED_OPEN ? OPEN_FIELDS : HALF_OPEN_FIELDS
    })
  }

  function admitToUpstream (_request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
    const record = reply.faultline
    if (record === null) {
      done()
      return
    }
    const verdict = breaker.admit(record)
    if (verdict === ADMITTED) done()
    // Answered on the next tick: onRequest runs before Node's parser has marked even a bodiless
    // request complete, and the core's error reply closes the connection of an incomplete request.
    // A breaker that made every rejected client reconnect would add load during the outage.
    else process.nextTick(done, rejection(verdict))
  }

  const core = scope.faultline
  if (!coresWithSink.has(core)) {
    coresWithSink.add(core)
    core.addSink(breakerSink)
  }
  scope.addHook('onClose', (_instance, next) => {
    breaker.shutdown()
    next()
  })

  return {
    admit: admitToUpstream,
    view: {
      get name () { return breaker.name },
      get state () { return breaker.currentState },
      get inFlight () { return breaker.inFlight },
      get targets () { return breaker.targets },
      stats: () => breaker.stats()
    },
    addTarget (url: string): void {
      const address = targetAddress(url)
      if (address !== undefined) breaker.addTarget(address)
    }
  }
}

async function faultlineBreaker (fastify: FastifyInstance, options: FaultlineBreakerOptions): Promise<void> {
  if (fastify.hasDecorator('faultlineBreaker')) {
    throw new Error('@faultline/breaker: a breaker already guards this scope; register one per API, in the API\'s own scope')
  }
  let apiName: string | undefined
  let otherApiWarned = false
  const prefix = fastify.prefix === '' ? '/' : fastify.prefix
  const breaker = createApiBreaker(fastify, options, () => apiName ?? options.name ?? prefix)

  let guardedRoutes = 0
  // The API's name, from the routes of this scope (the proxy sets config.apiName).
  fastify.addHook('onRoute', (route: RouteOptions) => {
    guardedRoutes++
    const name = (route.config as { apiName?: unknown } | undefined)?.apiName
    if (typeof name !== 'string') return
    if (apiName === undefined) apiName = name
    else if (name !== apiName && !otherApiWarned) {
      otherApiWarned = true
      fastify.log.warn({ api_name: apiName, other_api_name: name }, 'faultline: one circuit breaker guards two APIs; register one per API scope')
    }
  })
  // The API's targets, from the proxy registered after us in this scope (its `upstream.targets`);
  // any other `upstream_addr` the records show is added as it is seen.
  fastify.addHook('onRegister', (_instance, opts) => {
    const targets = (opts as { upstream?: { targets?: unknown } }).upstream?.targets
    if (!Array.isArray(targets)) return
    for (const url of targets) breaker.addTarget(url)
  })

  fastify.addHook('onRequest', breaker.admit)
  fastify.decorate('faultlineBreaker', breaker.view)

  fastify.addHook('onReady', (next) => {
    // Routes registered before the breaker (a proxy registered first) do not run its hook.
    if (guardedRoutes === 0) fastify.log.warn({ circuit_breaker: breaker.view.name }, 'faultline: the circuit breaker guards no route; register it before the proxy, in the API\'s scope')
    next()
  })
}

export const faultlineBreakerPlugin: FastifyPluginAsync<FaultlineBreakerOptions> = fp(faultlineBreaker, {
  fastify: '5.x',
  name: '@faultline/breaker',
  dependencies: ['@faultline/core']
})
