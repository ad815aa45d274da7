/**
 * External auth: each request is decided by the user's auth service. The gateway sends it a GET
 * with the listed request headers plus `x-forwarded-method` and `x-forwarded-uri` (the client's
 * method and path with query, so the service can decide per route), over its own undici Agent
 * (TLS verified, every wait bounded by `timeout`).
 *
 * - 2xx allows. The listed `resultHeaders` of the answer replace any the client sent, on the
 *   request that goes upstream; the answer's `x-consumer-id` becomes the record's `consumer`.
 * - 401 and 403 deny: EAD 403. Nothing of the service's answer reaches the client.
 * - Anything else (no connection, no answer in time, reset, not HTTP, 3xx, 5xx, ...) is EAE 503,
 *   target the service's `host:port`; the transport failure is named by the same detection the
 *   proxy uses (`classifyTransportError`) in one warn line on the app log.
 *
 * Decisions (allow and deny, never errors) may be cached for `cacheTtl` ms, keyed by a sha256 of
 * the method, the path with query and the forwarded header values: no credential is kept as a key.
 */
import { createHash, X509Certificate } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { Agent, buildConnector, errors, type Dispatcher } from 'undici'
import { classifyTransportError, FaultlineError } from '@faultline/core'
import type { Authenticator, ExternalAuthOptions } from './options.js'
import { removeRequestHeader } from './request-headers.js'

const SOURCE = 'ExternalAuth'
/** Header of an answer (allowing or denying) that names the consumer for the access log. */
export const CONSUMER_HEADER = 'x-consumer-id'
/** At most one warn line per this many ms while the service keeps failing (then `suppressed` counts the rest). */
const WARNING_INTERVAL_MS = 10_000
const FORWARDED_METHOD = 'x-forwarded-method'
const FORWARDED_URI = 'x-forwarded-uri'
/** The most of an answer's body the gateway reads (and throws away) before dropping the connection. */
const MAX_BODY_BYTES = 64 * 1024
const CACHE_MAX_ENTRIES = 10_000
/** Longest consumer id taken into the record; a longer one is ignored. */
const MAX_CONSUMER_LENGTH = 256
const MAX_TIMER_MS = 2_147_483_647
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/
const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g
/** Connection-level and framing headers: neither forwarded to the service nor copied from it. */
const RESERVED_HEADERS = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer',
  'expect', 'content-length', 'host', FORWARDED_METHOD, FORWARDED_URI
])

interface Decision {
  allowed: boolean
  consumer: string | undefined
  /** `resultHeaders` present in an allowing answer, as [name, value]. */
  headers: Array<[string, string]> | undefined
}

interface ExternalAuthSettings {
  origin: string
  path: string
  /** `host:port` of the auth service: the `error_target` of EAE. */
  target: string
  timeout: number
  forwardHeaders: readonly string[]
  resultHeaders: readonly string[]
  cacheTtl: number
  ca: string[] | undefined
}

/** One check in flight: its deadline aborts it with the error that names the phase it was in. */
interface PendingCheck {
  controller: AbortController
  /** The answer's head arrived: only its body is left. */
  answered: boolean
  /** Rejects the wait for the answer's head (a no-op once it settled). */
  reject: ((err: Error) => void) | undefined
}

function fail (option: string, expected: string, value: unknown): never {
  throw new TypeError(`@faultline/auth: option "${option}" must be ${expected}, got ${JSON.stringify(value)}`)
}

function headerList (option: string, value: unknown, fallback: string[]): string[] {
  if (value === undefined) return fallback
  if (!Array.isArray(value)) fail(option, 'an array of header names', value)
  const names: string[] = []
  value.forEach((name: unknown, i) => {
    if (typeof name !== 'string' || !HEADER_NAME.test(name.toLowerCase())) fail(`${option}[${i}]`, 'a header name', name)
    const lower = name.toLowerCase()
    if (RESERVED_HEADERS.has(lower)) fail(`${option}[${i}]`, 'a header the gateway does not set itself (not hop-by-hop, host, content-length or x-forwarded-method/uri)', name)
    if (!names.includes(lower)) names.push(lower)
  })
  return names
}

function parseUrl (value: unknown): URL {
  if (typeof value !== 'string') fail('url', 'an http or https URL', value)
  let url: URL
  try {
    url = new URL(value)
  } catch {
    fail('url', 'an http or https URL', value)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') fail('url', 'an http or https URL', value)
  if (url.username !== '' || url.password !== '') {
    // Never echo credentials, even misplaced ones.
    throw new TypeError('@faultline/auth: option "url" must not carry credentials (user:password@); forward them as headers instead')
  }
  return url
}

function parseCa (value: unknown, https: boolean): string[] | undefined {
  if (value === undefined) return undefined
  const list = Array.isArray(value) ? value as unknown[] : [value]
  if (list.length === 0) fail('ca', 'PEM certificate(s)', value)
  const pems = list.map((pem, i) => {
    const where = Array.isArray(value) ? `ca[${i}]` : 'ca'
    if (typeof pem !== 'string') fail(where, 'a PEM certificate string', typeof pem)
    const blocks = pem.match(PEM_CERTIFICATE)
    if (blocks === null) fail(where, 'PEM certificate(s) (-----BEGIN CERTIFICATE-----)', pem.length > 40 ? pem.slice(0, 40) + '...' : pem)
    for (const block of blocks) {
      try {
        new X509Certificate(block) // eslint-disable-line no-new
      } catch {
        fail(where, 'PEM certificate(s) that parse', block.slice(0, 60) + '...')
      }
    }
    return pem
  })
  if (!https) throw new TypeError('@faultline/auth: option "ca" only applies to an https "url"')
  return pems
}

function buildSettings (options: ExternalAuthOptions): ExternalAuthSettings {
  const url = parseUrl(options.url)
  const timeout = options.timeout ?? 1000
  if (!Number.isInteger(timeout) || timeout <= 0 || timeout > MAX_TIMER_MS) fail('timeout', 'an integer number of ms > 0', options.timeout)
  const cacheTtl = options.cacheTtl ?? 0
  if (!Number.isInteger(cacheTtl) || cacheTtl < 0 || cacheTtl > MAX_TIMER_MS) fail('cacheTtl', 'an integer number of ms >= 0', options.cacheTtl)
  const https = url.protocol === 'https:'
  const port = url.port !== '' ? url.port : (https ? '443' : '80')
  return {
    origin: url.origin,
    path: url.pathname + url.search,
    target: `${url.hostname}:${port}`,
    timeout,
    forwardHeaders: headerList('forwardHeaders', options.forwardHeaders, ['authorization']),
    resultHeaders: headerList('resultHeaders', options.resultHeaders, []),
    cacheTtl,
    ca: parseCa(options.ca, https)
  }
}

/** A bounded cache of decisions; the oldest entry goes first when it is full. */
class DecisionCache {
  private readonly entries = new Map<string, { value: Decision, expires: number }>()
  constructor (private readonly max: number, private readonly ttl: number) {}

  get (key: string, now: number): Decision | undefined {
    const hit = this.entries.get(key)
    if (hit === undefined) return undefined
    if (hit.expires <= now) {
      this.entries.delete(key)
      return undefined
    }
    return hit.value
  }

  set (key: string, value: Decision, now: number): void {
    this.entries.delete(key)
    if (this.entries.size >= this.max) {
      // Maps iterate in insertion order: the first key is the oldest.
      const oldest = this.entries.keys().next()
      if (oldest.done !== true) this.entries.delete(oldest.value)
    }
    this.entries.set(key, { value, expires: now + this.ttl })
  }
}

function headerValue (value: string | string[] | undefined): string | undefined {
  if (value === undefined) return undefined
  return typeof value === 'string' ? value : value.join(', ')
}

/** Reads an answer's body to its end (keeping the connection reusable), never holding more than a chunk. */
async function discardBody (body: Dispatcher.ResponseData['body']): Promise<void> {
  let read = 0
  for await (const chunk of body) {
    read += (chunk as Buffer).length
    // Not worth reading on: dropping the connection is cheaper (leaving the loop destroys the body).
    if (read > MAX_BODY_BYTES) break
  }
}

export function createExternalAuthenticator (options: ExternalAuthOptions): Authenticator {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError(`@faultline/auth: external auth options must be an object, got ${JSON.stringify(options)}`)
  }
  const settings = buildSettings(options)
  const { origin, path, target, timeout, forwardHeaders, resultHeaders } = settings
  const cache = settings.cacheTtl > 0 ? new DecisionCache(CACHE_MAX_ENTRIES, settings.cacheTtl) : undefined

  // Connects in progress: lets a deadline that fires during one say connection_timeout.
  let connecting = 0
  const connector = buildConnector({ timeout, ca: settings.ca, rejectUnauthorized: true })
  const agent = new Agent({
    connect (opts, callback) {
      connecting++
      connector(opts, (err, socket) => {
        connecting--
        // The connector's callback overloads do not accept a union: call the branch it is.
        if (err !== null) callback(err, null)
        else callback(null, socket as NonNullable<typeof socket>)
      })
    },
    headersTimeout: timeout,
    bodyTimeout: timeout
  })

  /** The deadline of a check: aborts it with undici's error for the phase it is in. */
  function expire (check: PendingCheck): void {
    const reason = check.answered
      ? new errors.BodyTimeoutError()
      : connecting > 0 ? new errors.ConnectTimeoutError() : new errors.HeadersTimeoutError()
    check.controller.abort(reason)
    check.reject?.(reason)
  }

  /**
   * The answer's head, or the deadline's error at the deadline. undici defers an abort that comes
   * while the connection is still being made until the connect settles (its own connect timer is
   * coarse: up to ~1 s late), so the deadline rejects here itself to keep the bound.
   */
  async function requestHead (check: PendingCheck, headers: Record<string, string>): Promise<Dispatcher.ResponseData> {
    return await new Promise((resolve, reject) => {
      check.reject = reject
      agent.request({ origin, path, method: 'GET', headers, signal: check.controller.signal }).then((res) => {
        // Too late: the deadline has answered already; drop the connection rather than read on.
        if (check.controller.signal.aborted) res.body.destroy()
        else resolve(res)
      }, reject)
    })
  }

  /**
   * EAE, after a warn line naming the service and why: the transport failure (the proxy's own
   * detection), or the status it answered. Never a header value, never the service's text.
   */
  let lastWarning = -Infinity
  let suppressed = 0

  function failure (request: FastifyRequest, reply: FastifyReply, status: number | undefined, cause: unknown): FaultlineError {
    const fields: Record<string, unknown> = { external_auth: target, request_id: reply.faultline?.request_id }
    if (status !== undefined) {
      fields.reason = 'unexpected_status'
      fields.status = status
    } else {
      const transport = classifyTransportError(cause)
      fields.reason = transport?.details ?? 'request_failed'
      if (transport === undefined) {
        // Unrecognised: its code or name helps, its message might quote what was sent.
        const e = cause as { code?: unknown, name?: unknown } | null
        fields.error_code = typeof e?.code === 'string' ? e.code : typeof e?.name === 'string' ? e.name : typeof cause
      }
    }
    // One line per interval, not per request: a dead service under load must not flood the log.
    const now = Date.now()
    if (now - lastWarning >= WARNING_INTERVAL_MS) {
      if (suppressed > 0) fields.suppressed = suppressed
      request.log.warn(fields, 'faultline: external auth failed')
      lastWarning = now
      suppressed = 0
    } else {
      suppressed++
    }
    return new FaultlineError('EAE', { source: SOURCE, target, cause })
  }

  async function ask (request: FastifyRequest, reply: FastifyReply, headers: Record<string, string>): Promise<Decision> {
    const check: PendingCheck = { controller: new AbortController(), answered: false, reject: undefined }
    const timer = setTimeout(expire, timeout, check)
    let status: number
    let answer: IncomingHttpHeaders
    try {
      const res = await requestHead(check, headers)
      check.answered = true
      status = res.statusCode
      answer = res.headers as IncomingHttpHeaders
      await discardBody(res.body)
    } catch (err) {
      throw failure(request, reply, undefined, err)
    } finally {
      clearTimeout(timer)
    }

    const allowed = status >= 200 && status < 300
    if (!allowed && status !== 401 && status !== 403) {
      throw failure(request, reply, status, undefined)
    }
    const id = headerValue(answer[CONSUMER_HEADER])
    const consumer = id !== undefined && id.length > 0 && id.length <= MAX_CONSUMER_LENGTH ? id : undefined
    let copied: Array<[string, string]> | undefined
    if (allowed) {
      for (const name of resultHeaders) {
        const value = headerValue(answer[name])
        if (value !== undefined) (copied ??= []).push([name, value])
      }
    }
    return { allowed, consumer, headers: copied }
  }

  /** sha256 of what the service decides on: the credential itself is never kept. */
  function cacheKey (headers: Record<string, string>): string {
    const hash = createHash('sha256').update(headers[FORWARDED_METHOD]).update('\n').update(headers[FORWARDED_URI])
    for (const name of forwardHeaders) {
      const value = headers[name]
      // Header values hold no NUL (the HTTP parser refuses them): absent and empty stay distinct.
      hash.update(value === undefined ? '\0-' : '\0=' + value)
    }
    return hash.digest('hex')
  }

  function apply (request: FastifyRequest, reply: FastifyReply, decision: Decision): void {
    const record = reply.faultline
    if (record !== null && decision.consumer !== undefined) record.consumer = decision.consumer
    if (!decision.allowed) throw new FaultlineError('EAD', { source: SOURCE })
    // The service's answer is the only source of these headers: a client's own are dropped.
    for (let i = 0; i < resultHeaders.length; i++) removeRequestHeader(request, resultHeaders[i])
    const copied = decision.headers
    if (copied !== undefined) {
      const incoming = request.headers
      for (let i = 0; i < copied.length; i++) incoming[copied[i][0]] = copied[i][1]
    }
  }

  async function authenticate (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const raw = request.raw
    const headers: Record<string, string> = {
      [FORWARDED_METHOD]: raw.method ?? 'GET',
      [FORWARDED_URI]: raw.url ?? '/'
    }
    for (let i = 0; i < forwardHeaders.length; i++) {
      const value = headerValue(request.headers[forwardHeaders[i]])
      if (value !== undefined) headers[forwardHeaders[i]] = value
    }
    if (cache === undefined) {
      apply(request, reply, await ask(request, reply, headers))
      return
    }
    const key = cacheKey(headers)
    let decision = cache.get(key, Date.now())
    if (decision === undefined) {
      decision = await ask(request, reply, headers)
      cache.set(key, decision, Date.now())
    }
    apply(request, reply, decision)
  }

  /**
   * Runs in onClose, once the server answered its last request: nothing waits on a check any more,
   * but a check that hit its deadline while connecting may still hold a socket (undici lets the
   * connect run to its own timer). Destroy rather than close, so that does not delay the shutdown.
   */
  async function close (): Promise<void> {
    await agent.destroy()
  }

  return { source: SOURCE, authenticate, close }
}
