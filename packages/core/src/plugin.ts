/**
 * The core plugin: gives every request a record and a request id, classifies every failure
 * (onError, the error reply, the not-found handler, HTTP-parser errors, aborts and cut
 * responses), and hands the finished record to the sinks (access log, metrics) exactly once.
 */
import type { IncomingHttpHeaders, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import type {
  FastifyError,
  FastifyInstance,
  FastifyPluginAsync,
  FastifyReply,
  FastifyRequest,
  HookHandlerDoneFunction
} from 'fastify'
import fp from 'fastify-plugin'
import { classifyError, type ErrorClassification } from './classify-error.js'
import { buildErrorBody } from './error-reply.js'
import { FaultlineError } from './faultline-error.js'
import { flags, isFlag } from './flags.js'
import { kDone, kExposeFlag, kReply, kRouteConfig, kStart, kStatusCode, kUpstreamStart } from './internal.js'
import { FaultlineRecord, roundMs } from './record.js'
import { resolveRequestId } from './request-id.js'
import { classifyParserError } from './classify-parser-error.js'
import { kParserLogged, kParserRequestId } from './client-error-handler.js'

/** Receives each finished record once: the access log and metrics are sinks. */
export type RecordSink = (record: FaultlineRecord, reply: FastifyReply | null) => void

export interface FaultlineCoreOptions {
  /** Add `x-faultline-flag` and `code` to gateway error replies (per route: `config.exposeFlag`). Default false. */
  exposeFlag?: boolean
  /** Honour a safe incoming request id header. Default true. */
  trustRequestId?: boolean
  /** The request id header, read and echoed. Default `x-request-id`. */
  requestIdHeader?: string
  /**
   * Install the contract's error reply with `setErrorHandler` at the level the core is registered
   * (default true). It replaces an error handler set before; child contexts may still set their own,
   * and their errors are still classified by the core's onError hook.
   */
  errorHandler?: boolean
  /** Install a not-found handler answering NRF (default true). Set false if the app has its own. */
  notFoundHandler?: boolean
  /** Log HTTP-parser errors (bad Content-Length, CL+TE, header overflow, request timeout). Default true. */
  clientErrors?: boolean
}

export interface FaultlineCore {
  /** Adds a sink for finished records. */
  addSink: (sink: RecordSink) => void
  /**
   * Resolves once every request started so far has emitted its record (or after `timeoutMs`).
   * Sinks that buffer (the access log) wait for it on close, so that no line is lost at shutdown.
   */
  settled: (timeoutMs?: number) => Promise<void>
  /**
   * Answers a request that Fastify handles without running any hook or the app's error handler
   * (see `frameworkErrors`): starts its record, sends the contract's error body, and the access
   * line follows when the response closes.
   */
  reject: (request: FastifyRequest, reply: FastifyReply, error: Error) => void
  /** The settings the core was registered with. */
  readonly settings: Readonly<Required<FaultlineCoreOptions>>
}

export interface FailureReport {
  details?: string
  source?: string
  target?: string
  statusCode?: number
  fields?: Record<string, string | number | boolean | undefined>
}

declare module 'fastify' {
  interface FastifyReply {
    /** This request's record: the fields of its access-log line. `null` before the core's onRequest. */
    faultline: FaultlineRecord | null
  }
  interface FastifyRequest {
    /** The same record as `reply.faultline`, for code that only has the request (key generators). */
    faultline: FaultlineRecord | null
  }
  interface FastifyInstance {
    faultline: FaultlineCore
  }
  interface FastifyContextConfig {
    /** `api_name` for requests of this route. */
    apiName?: string
    /** Expose the flag to clients of this route (overrides the core's `exposeFlag`). */
    exposeFlag?: boolean
  }
}

const defaults: Required<FaultlineCoreOptions> = {
  exposeFlag: false,
  trustRequestId: true,
  requestIdHeader: 'x-request-id',
  errorHandler: true,
  notFoundHandler: true,
  clientErrors: true
}

const booleanOptions = ['exposeFlag', 'trustRequestId', 'errorHandler', 'notFoundHandler', 'clientErrors'] as const

function buildSettings (options: FaultlineCoreOptions): Required<FaultlineCoreOptions> {
  const settings = { ...defaults }
  for (const name of booleanOptions) {
    const value = options[name]
    if (value === undefined) continue
    if (typeof value !== 'boolean') {
      throw new TypeError(`@faultline/core: option "${name}" must be a boolean, got ${JSON.stringify(value)}`)
    }
    settings[name] = value
  }
  if (options.requestIdHeader !== undefined) {
    if (typeof options.requestIdHeader !== 'string' || !/^[a-z0-9-]+$/i.test(options.requestIdHeader)) {
      throw new TypeError(`@faultline/core: option "requestIdHeader" must be a header name, got ${JSON.stringify(options.requestIdHeader)}`)
    }
    settings.requestIdHeader = options.requestIdHeader.toLowerCase()
  }
  return Object.freeze(settings)
}

/**
 * Records a failure on the reply unless an earlier boundary already did: the flag always names the
 * first boundary that failed. Returns whether this call set it.
 */
export function reportFailure (reply: FastifyReply, flag: string, report: FailureReport = {}): boolean {
  const record = reply.faultline
  if (record === null || record === undefined) return false
  if (!isFlag(flag)) throw new TypeError(`unknown Faultline flag: ${JSON.stringify(flag)}`)
  return applyClassification(record, { flag, ...report })
}

export function applyClassification (record: FaultlineRecord, c: ErrorClassification): boolean {
  if (record.response_flag !== undefined) return false
  const def = flags[c.flag] ?? flags.GIE
  record.response_flag = def.code
  record.response_code_details = c.details ?? def.details
  record.error_category = def.category
  record.error_source = c.source ?? def.source
  if (c.target !== undefined) record.error_target = c.target
  record[kStatusCode] = c.statusCode ?? def.status ?? undefined
  if (c.fields !== undefined) {
    const target = record as unknown as Record<string, unknown>
    for (const key of Object.keys(c.fields)) {
      if (Object.hasOwn(record, key) && c.fields[key] !== undefined) target[key] = c.fields[key]
    }
  }
  return true
}

// Statuses a gateway route may send without an error object; an unflagged one gets the flag whose
// status it is. Anything else with an error status is GIE, as the contract requires.
const flagByStatus: Record<number, string> = {
  404: 'NRF', 405: 'MNA', 408: 'RTO', 411: 'CLM', 413: 'BTL', 415: 'UMT', 429: 'RLT', 431: 'HTL'
}

function classifyUnflaggedStatus (record: FaultlineRecord, status: number): void {
  if (record.response_source === 'upstream') {
    if (status >= 500) {
      applyClassification(record, { flag: 'URS', target: record.upstream_addr, statusCode: status })
      record.upstream_status ??= status
    }
    return
  }
  const flag = flagByStatus[status]
  if (flag !== undefined) applyClassification(record, { flag })
  else applyClassification(record, { flag: 'GIE', details: 'unclassified_response' })
}

/** Whether a request's head announces a body (Content-Length other than 0, or Transfer-Encoding). */
export function declaresBody (headers: IncomingHttpHeaders): boolean {
  const length = headers['content-length']
  return headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0')
}

/** A request that declared a body the gateway has not read (a rejection before the body parser). */
function hasUnreadBody (raw: FastifyRequest['raw']): boolean {
  return !raw.complete && declaresBody(raw.headers)
}

type ResponseWithReply = ServerResponse & { [kReply]?: FastifyReply }

async function faultlineCore (fastify: FastifyInstance, options: FaultlineCoreOptions): Promise<void> {
  const settings = buildSettings(options)
  const sinks: RecordSink[] = []
  const idHeader = settings.requestIdHeader
  let inFlight = 0
  let draining = false
  /** Who waits in `settled()` for the records in flight. */
  const settledWaiters = new Set<() => void>()

  function emit (record: FaultlineRecord, reply: FastifyReply | null): void {
    for (let i = 0; i < sinks.length; i++) {
      try {
        sinks[i](record, reply)
      } catch (err) {
        fastify.log.error({ err }, 'faultline: a record sink failed')
      }
    }
  }

  /** Completes the record when the response finished, was aborted, or was cut, and emits it once. */
  function complete (reply: FastifyReply, res: ServerResponse, finished: boolean): void {
    const record = reply.faultline
    if (record === null || record[kDone]) return
    record[kDone] = true
    const total = performance.now() - record[kStart]
    if (finished) {
      record.status = res.statusCode
      if (record.response_flag === undefined && res.statusCode >= 400) classifyUnflaggedStatus(record, res.statusCode)
    } else {
      // Cut before the end. No flag yet: the client left, or the gateway's drain ran out of time
      // and closed it.
      if (record.response_flag === undefined) applyClassification(record, { flag: draining ? 'SHD' : 'CDC' })
      // The status line already went out: the line says the body was cut.
      if (res.headersSent) record.response_truncated = true
      if (record.response_flag === 'CDC') record.status = 499
      // A failure after the status went out (upstream reset or timeout mid-body) keeps that status.
      else if (res.headersSent) record.status = res.statusCode
      else record.status = record[kStatusCode] ?? 499
    }
    const upstreamStart = record[kUpstreamStart]
    if (record.upstream_latency === undefined && upstreamStart !== undefined) {
      // Still waiting on the upstream when the response ended (client gone): it waited until now.
      record.upstream_latency = roundMs(performance.now() - upstreamStart)
    }
    record.latency_total = roundMs(total)
    record.gateway_latency = record.upstream_latency === undefined
      ? record.latency_total
      : roundMs(Math.max(0, total - record.upstream_latency))
    emit(record, reply)
    inFlight--
    if (inFlight === 0) for (const done of settledWaiters) done()
  }

  async function settled (timeoutMs = 2000): Promise<void> {
    if (inFlight === 0) return
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, timeoutMs)
      function done (): void {
        clearTimeout(timer)
        settledWaiters.delete(done)
        resolve()
      }
      settledWaiters.add(done)
    })
  }

  // A finished response completes in onResponse ('finish'); one that was aborted or cut never
  // finishes, and completes on 'close'. Both may run: the record is emitted once.
  function onResponse (_request: FastifyRequest, reply: FastifyReply, next: HookHandlerDoneFunction): void {
    complete(reply, reply.raw, true)
    next()
  }

  function onResponseClose (this: ResponseWithReply): void {
    const reply = this[kReply]
    if (reply !== undefined) {
      this[kReply] = undefined
      complete(reply, this, this.writableFinished)
    }
  }

  function onRequest (request: FastifyRequest, reply: FastifyReply, next: HookHandlerDoneFunction): void {
    startRecord(request, reply)
    next()
  }

  function startRecord (request: FastifyRequest, reply: FastifyReply): void {
    const raw = request.raw
    const id = resolveRequestId(raw.headers[idHeader], settings.trustRequestId)
    const url = raw.url ?? '/'
    const q = url.indexOf('?')
    const record = new FaultlineRecord(id, raw.method ?? 'GET', q === -1 ? url : url.slice(0, q))
    const routeOptions = request.routeOptions
    const config = routeOptions.config as unknown as Record<string | symbol, unknown> & { apiName?: string, exposeFlag?: boolean }
    record.route = routeOptions.url ?? '/*'
    record.api_name = config.apiName
    record.client_ip = request.ip
    record.user_agent = raw.headers['user-agent']
    record[kStart] = performance.now()
    record[kExposeFlag] = config.exposeFlag ?? settings.exposeFlag
    record[kRouteConfig] = config
    reply.faultline = record
    request.faultline = record
    inFlight++
    reply.header(idHeader, id)
    const res = reply.raw as ResponseWithReply
    res[kReply] = reply
    // `on`, not `once`: no wrapper allocated per request; the handler clears its slot on first run.
    res.on('close', onResponseClose)
  }

  function onError (request: FastifyRequest, reply: FastifyReply, error: FastifyError, next: HookHandlerDoneFunction): void {
    // Callback style on purpose: an async onError hook turns a reply-from bad-status reply into an
    // uncaught FST_ERR_SEND_INSIDE_ONERR (shared/reference/node-error-shapes.md section 3.4).
    const record = reply.faultline
    if (record !== null) applyClassification(record, classifyError(error))
    next()
  }

  function errorHandler (error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
    const record = reply.faultline
    if (record === null) {
      // The error came before the core's onRequest ran (it cannot, unless a hook registered before
      // the core threw): answer without a record.
      reply.code(500).send(buildErrorBody('GIE', 500, request.id, false))
      return
    }
    const classification = classifyError(error)
    applyClassification(record, classification)
    if (record.response_flag === 'GIE') {
      request.log.error({ err: error, request_id: record.request_id }, 'faultline: unexpected error')
    }
    const flag = record.response_flag ?? 'GIE'
    const status = record[kStatusCode] ?? 500
    if (classification.flag === flag && classification.headers !== undefined) reply.headers(classification.headers)
    if (record[kExposeFlag]) reply.header('x-faultline-flag', flag)
    // A body the gateway will never read would leave the client stalled on a kept-alive connection.
    if (hasUnreadBody(request.raw)) reply.header('connection', 'close')
    reply.code(status).type('application/json; charset=utf-8').send(buildErrorBody(flag, status, record.request_id, record[kExposeFlag]))
  }

  function onClientError (err: NodeJS.ErrnoException, socket: Socket): void {
    const parsed = classifyParserError(err)
    if (parsed === undefined) return
    const marked = socket as Socket & { [kParserLogged]?: boolean }
    if (marked[kParserLogged] === true) return
    marked[kParserLogged] = true
    const inFlight = (socket as Socket & { _httpMessage?: ResponseWithReply | null })._httpMessage
    const reply = inFlight?.[kReply]
    if (reply?.faultline != null) {
      // The request was already being handled (e.g. a broken chunked body): classify it there.
      applyClassification(reply.faultline, { flag: parsed.flag, details: parsed.details, statusCode: parsed.status })
      return
    }
    // The same id the client received, when the app uses the core's clientErrorHandler.
    const id = (socket as Socket & { [kParserRequestId]?: string })[kParserRequestId] ?? resolveRequestId(undefined, false)
    const record = new FaultlineRecord(id, parsed.method ?? '-', parsed.path ?? '-')
    record.route = '-'
    record.client_ip = socket.remoteAddress
    applyClassification(record, { flag: parsed.flag, details: parsed.details })
    record.status = parsed.status
    record.latency_total = 0
    record.gateway_latency = 0
    record[kDone] = true
    emit(record, null)
  }

  fastify.decorateReply('faultline', null)
  fastify.decorateRequest('faultline', null)
  // The slot @faultline/proxy fills with the chosen upstream target. Declared here, once, rather
  // than by each API's proxy: a request decorator per API scope gives every API's requests a shape
  // of their own; with 1,000 scopes and traffic spread over them, a bare Fastify app served each
  // request 15 to 40% slower for it (BENCHMARKS.md).
  fastify.decorateRequest('faultlineUpstream', null)
  fastify.decorate('faultline', {
    addSink (sink: RecordSink) {
      if (typeof sink !== 'function') throw new TypeError('faultline.addSink: sink must be a function')
      sinks.push(sink)
    },
    settled,
    reject (request: FastifyRequest, reply: FastifyReply, error: Error) {
      // Fastify builds such replies from its base prototype: no `faultline` decorator, no record.
      if (reply.faultline == null) startRecord(request, reply)
      errorHandler(error as FastifyError, request, reply)
    },
    settings
  } satisfies FaultlineCore)

  fastify.addHook('onRequest', onRequest)
  fastify.addHook('preClose', (next) => {
    draining = true
    next()
  })
  fastify.addHook('onResponse', onResponse)
  fastify.addHook('onError', onError)
  if (settings.errorHandler) fastify.setErrorHandler(errorHandler)
  if (settings.notFoundHandler) {
    fastify.setNotFoundHandler(function notFound (_request, reply) {
      reply.send(new FaultlineError('NRF'))
    })
  }
  if (settings.clientErrors) {
    fastify.server.on('clientError', onClientError)
    fastify.addHook('onClose', (_instance, next) => {
      fastify.server.off('clientError', onClientError)
      next()
    })
  }
}

export const faultlineCorePlugin: FastifyPluginAsync<FaultlineCoreOptions> = fp(faultlineCore, {
  fastify: '5.x',
  name: '@faultline/core'
})
