import { recordFields } from '@faultline/core'

/** Fields of an access line, as written by @faultline/access-log. */
export type AccessRecord = Record<string, string | number | boolean | undefined>

/**
 * One access line as the access log writes it: pino's `level` and `time`, the record fields in
 * `recordFields` order (undefined ones left out), `msg` last.
 */
export function accessLine (time: number, record: AccessRecord): string {
  const out: Record<string, unknown> = { level: 30, time }
  for (const field of recordFields) if (record[field] !== undefined) out[field] = record[field]
  for (const [field, value] of Object.entries(record)) if (!(field in out) && value !== undefined) out[field] = value
  out.msg = 'access'
  return JSON.stringify(out)
}

let n = 0

/** A successful proxied request. */
export function okLine (time: number, api = 'Orders', upstreamLatency = 10): string {
  return accessLine(time, {
    request_id: `req-${++n}`,
    method: 'GET',
    path: '/orders/1',
    route: '/orders/*',
    api_name: api,
    status: 200,
    response_source: 'upstream',
    upstream_status: 200,
    upstream_addr: '10.0.0.7:8080',
    upstream_attempts: 1,
    upstream_latency: upstreamLatency,
    gateway_latency: 0.5,
    latency_total: upstreamLatency + 0.5
  })
}

const facts: Record<string, { status: number, category: string, source: string, details: string, upstream: boolean }> = {
  UCF: { status: 502, category: 'upstream', source: 'UpstreamProxy', details: 'connection_refused', upstream: true },
  URT: { status: 504, category: 'upstream', source: 'UpstreamProxy', details: 'response_timeout', upstream: true },
  URS: { status: 503, category: 'upstream', source: 'Upstream', details: 'upstream_response_status', upstream: true },
  AKI: { status: 401, category: 'auth', source: 'ApiKeyAuth', details: 'api_key_invalid', upstream: false },
  RLT: { status: 429, category: 'rate_limit', source: 'RateLimit', details: 'rate_limited', upstream: false },
  NRF: { status: 404, category: 'client', source: 'Router', details: 'no_route', upstream: false },
  EAE: { status: 503, category: 'auth', source: 'ExternalAuth', details: 'external_auth_error', upstream: false },
  GIE: { status: 500, category: 'gateway', source: 'Gateway', details: 'gateway_internal_error', upstream: false }
}

/** A flagged line with the flag's catalogue facts; `extra` overrides any field. */
export function errorLine (time: number, flag: string, extra: AccessRecord = {}): string {
  const f = facts[flag]
  if (f === undefined) throw new Error(`no test facts for ${flag}`)
  const upstreamLatency = f.upstream ? 20 : undefined
  return accessLine(time, {
    request_id: `req-${++n}`,
    method: 'GET',
    path: '/orders/1',
    route: '/orders/*',
    api_name: flag === 'NRF' ? undefined : 'Orders',
    status: f.status,
    response_source: flag === 'URS' ? 'upstream' : 'gateway',
    response_flag: flag,
    response_code_details: f.details,
    error_category: f.category,
    error_source: f.source,
    error_target: f.upstream ? '10.0.0.7:8080' : undefined,
    upstream_status: flag === 'URS' ? 503 : undefined,
    upstream_latency: upstreamLatency,
    gateway_latency: 0.5,
    latency_total: (upstreamLatency ?? 0) + 0.5,
    ...extra
  })
}
