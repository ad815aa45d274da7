import { kDone, kExposeFlag, kRouteConfig, kStart, kStatusCode, kUpstreamStart } from './internal.js'

/**
 * The per-request record: the fields of one access-log line (CONTRACT.md section 2),
 * filled in by the core and the plugins while the request runs. Decorated on the reply as
 * `reply.faultline`. Properties are declared up front so every record has the same shape;
 * a field left `undefined` is omitted from the log line.
 */
export class FaultlineRecord {
  request_id: string
  method: string
  path: string
  route: string | undefined = undefined
  api_name: string | undefined = undefined
  status: number | undefined = undefined
  response_source: 'gateway' | 'upstream' = 'gateway'
  response_flag: string | undefined = undefined
  response_code_details: string | undefined = undefined
  error_category: string | undefined = undefined
  error_source: string | undefined = undefined
  error_target: string | undefined = undefined
  upstream_status: number | undefined = undefined
  upstream_addr: string | undefined = undefined
  upstream_attempts: number | undefined = undefined
  upstream_latency: number | undefined = undefined
  gateway_latency: number | undefined = undefined
  latency_total: number | undefined = undefined
  tls_cert_expiry: string | undefined = undefined
  tls_cert_subject: string | undefined = undefined
  circuit_breaker_state: string | undefined = undefined
  rate_limit_degraded: true | undefined = undefined
  response_truncated: true | undefined = undefined
  client_ip: string | undefined = undefined
  user_agent: string | undefined = undefined
  consumer: string | undefined = undefined

  // Internal state, under symbols so that no log line ever carries it (set in the constructor).
  declare [kStart]: number
  declare [kDone]: boolean
  declare [kExposeFlag]: boolean
  declare [kRouteConfig]: Record<string | symbol, unknown> | undefined
  /** Status the classification asks for (the flag's, or the one a plugin gave). */
  declare [kStatusCode]: number | undefined
  /** performance.now() when the upstream was first dialled; lets an aborted line still say how long it waited. */
  declare [kUpstreamStart]: number | undefined

  constructor (requestId: string, method: string, path: string) {
    this.request_id = requestId
    this.method = method
    this.path = path
    this[kStart] = 0
    this[kDone] = false
    this[kExposeFlag] = false
    this[kRouteConfig] = undefined
    this[kStatusCode] = undefined
    this[kUpstreamStart] = undefined
  }
}

/** Names of every access-log field, in line order (time, level and msg are pino's). */
export const recordFields: readonly string[] = Object.freeze(Object.keys(new FaultlineRecord('', '', '')))

/** Rounds milliseconds to at most three decimals, as the access log requires. */
export function roundMs (ms: number): number {
  return Math.round(ms * 1000) / 1000
}
