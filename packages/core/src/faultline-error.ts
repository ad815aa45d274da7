import { getFlag, type FlagDefinition } from './flags.js'

const kFaultlineError = Symbol.for('faultline.error')

export interface FaultlineErrorOptions {
  /** A more precise `response_code_details` than the flag's default. */
  details?: string
  /** `error_source`: the component that detected the failure (defaults to the flag's source). */
  source?: string
  /** `error_target`: what failed, e.g. an upstream `host:port`. */
  target?: string
  /** Status sent to the client, when the flag's own status does not apply (URS passes the upstream's). */
  statusCode?: number
  /** Extra log fields (e.g. `tls_cert_expiry`, `circuit_breaker_state`). */
  fields?: Record<string, string | number | boolean | undefined>
  /** Response headers to send with the error reply (e.g. `retry-after`, `x-ratelimit-*`). */
  headers?: Record<string, string | number>
  /** The original error. Kept, never stringified away. */
  cause?: unknown
}

/**
 * An error that names the boundary that failed. Plugins throw it (or pass it to `reply.send`)
 * and the core classifies the reply with its flag.
 */
export class FaultlineError extends Error {
  readonly flag: string
  readonly details: string
  readonly source: string
  readonly target: string | undefined
  readonly statusCode: number
  readonly fields: Record<string, string | number | boolean | undefined> | undefined
  readonly headers: Record<string, string | number> | undefined

  constructor (flag: string, options: FaultlineErrorOptions = {}) {
    const def: FlagDefinition = getFlag(flag)
    super(def.message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'FaultlineError'
    this.flag = def.code
    this.details = options.details ?? def.details
    this.source = options.source ?? def.source
    this.target = options.target
    this.statusCode = options.statusCode ?? def.status ?? 502
    this.fields = options.fields
    this.headers = options.headers
  }

  get code (): string {
    return this.flag
  }

  get [kFaultlineError] (): true {
    return true
  }
}

/**
 * A FaultlineError without a stack trace, for failures the gateway meets at full request rate (a
 * breaker that is open, an upstream that refuses): they are classified, not bugs, so nobody reads
 * the wrapper's stack (a `cause` keeps its own), and capturing one is a measurable part of the cost
 * of an error reply (about 15% of CBO throughput in packages/breaker/bench/cbo-fast-fail.mjs).
 */
export function stacklessFaultlineError (flag: string, options?: FaultlineErrorOptions): FaultlineError {
  const stackTraceLimit = Error.stackTraceLimit
  Error.stackTraceLimit = 0
  try {
    return new FaultlineError(flag, options)
  } finally {
    Error.stackTraceLimit = stackTraceLimit
  }
}

/** Brand check that survives two copies of this package in one process. */
export function isFaultlineError (err: unknown): err is FaultlineError {
  return typeof err === 'object' && err !== null && (err as Record<symbol, unknown>)[kFaultlineError] === true
}
