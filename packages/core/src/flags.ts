/**
 * The response-flag catalogue: every flag of CONTRACT.md section 1, as data.
 * Statuses, client messages, docs and `faultline flags` all read this one table.
 */

export type FlagCategory = 'upstream' | 'auth' | 'rate_limit' | 'client' | 'gateway'

export interface FlagDefinition {
  /** Three-letter code, as written to `response_flag`. */
  readonly code: string
  /** Default `response_code_details`. */
  readonly details: string
  /** More precise values that may replace the default. */
  readonly alternativeDetails: readonly string[]
  /** Status sent to the client; `null` when the upstream's own status is passed through (URS). */
  readonly status: number | null
  readonly category: FlagCategory
  /** Default `error_source` (a plugin may name a more precise one from `sources`). */
  readonly source: string
  readonly sources: readonly string[]
  /** What the flag means, for operators. */
  readonly meaning: string
  /** The fixed, human sentence sent to clients as `message`. Never any upstream text. */
  readonly message: string
  /** The first thing an on-call engineer should check. */
  readonly check: string
  /** Whether the reply carries `Retry-After`. */
  readonly retryAfter: boolean
}

type FlagRow = Omit<FlagDefinition, 'alternativeDetails' | 'sources' | 'retryAfter'> & {
  alternativeDetails?: readonly string[]
  sources?: readonly string[]
  retryAfter?: boolean
}

const UPSTREAM_TLS = { status: 502, category: 'upstream', source: 'UpstreamProxy' } as const
const UPSTREAM = { category: 'upstream', source: 'UpstreamProxy' } as const
const CLIENT = { category: 'client', source: 'RequestValidation' } as const

const rows: FlagRow[] = [
  // Upstream TLS
  {
    code: 'TLE',
    details: 'tls_certificate_expired',
    ...UPSTREAM_TLS,
    meaning: "the upstream's certificate is past notAfter",
    message: "The upstream service's TLS certificate has expired",
    check: 'Renew the upstream certificate (tls_cert_expiry says when it expired; tls_cert_subject which one).'
  },
  {
    code: 'TLI',
    details: 'tls_certificate_invalid',
    ...UPSTREAM_TLS,
    alternativeDetails: ['tls_certificate_not_yet_valid', 'tls_certificate_revoked', 'tls_certificate_signature_invalid'],
    meaning: 'certificate present but unusable for another reason',
    message: "The upstream service's TLS certificate is not valid",
    check: "Inspect the upstream certificate's validity dates, revocation and signature; check the gateway clock."
  },
  {
    code: 'TLM',
    details: 'tls_hostname_mismatch',
    ...UPSTREAM_TLS,
    meaning: 'certificate does not cover the name or IP that was dialled',
    message: "The upstream service's TLS certificate does not match its address",
    check: "Compare the target host (or upstream.tls.servername) with the certificate's SAN list."
  },
  {
    code: 'TLN',
    details: 'tls_certificate_untrusted',
    ...UPSTREAM_TLS,
    alternativeDetails: ['tls_self_signed_certificate'],
    meaning: 'no trusted CA vouches for it (self-signed, unknown CA)',
    message: "The upstream service's TLS certificate is not trusted",
    check: "Give the API the upstream's CA in upstream.tls.ca, or have the upstream use a certificate from a trusted CA."
  },
  {
    code: 'TLC',
    details: 'tls_certificate_chain_incomplete',
    ...UPSTREAM_TLS,
    meaning: 'the server did not send the intermediate(s) needed to build a chain',
    message: "The upstream service's TLS certificate chain is incomplete",
    check: 'Configure the upstream to send its full chain (leaf + intermediates), or add its issuing CA to upstream.tls.ca.'
  },
  {
    code: 'TLP',
    details: 'tls_protocol_version_mismatch',
    ...UPSTREAM_TLS,
    alternativeDetails: ['tls_wrong_version_number'],
    meaning: 'no common TLS version, or plaintext answered on a TLS port',
    message: 'The gateway and the upstream service could not agree on a TLS version',
    check: 'Check the upstream speaks TLS on that port (wrong_version_number: it is plain HTTP) and the TLS versions both sides allow.'
  },
  {
    code: 'TLA',
    details: 'tls_alert_handshake_failure',
    ...UPSTREAM_TLS,
    alternativeDetails: ['tls_alert_certificate_required', 'tls_alert_unknown_ca', 'tls_alert_bad_certificate', 'tls_alert_<name>'],
    meaning: 'the peer sent a TLS alert',
    message: 'The upstream service rejected the TLS handshake',
    check: 'The upstream refused the handshake: check whether it requires a client certificate, and the ciphers it accepts.'
  },
  {
    code: 'TLH',
    details: 'tls_handshake_failed',
    ...UPSTREAM_TLS,
    meaning: 'the handshake broke for another reason (peer closed mid-handshake, ...)',
    message: 'The TLS handshake with the upstream service failed',
    check: "Check the upstream's TLS listener and its logs: it closed the connection during the handshake."
  },
  // Upstream connection and response
  {
    code: 'UCF',
    details: 'connection_refused',
    status: 502,
    ...UPSTREAM,
    meaning: 'nothing listens on the upstream port',
    message: 'Upstream connection refused',
    check: 'Is the upstream process running and listening on error_target (host:port)?'
  },
  {
    code: 'UCT',
    details: 'connection_timeout',
    status: 504,
    ...UPSTREAM,
    meaning: 'TCP/TLS connect did not finish in connectTimeout',
    message: 'Timed out connecting to the upstream service',
    check: 'Check reachability of error_target (firewall, security group, overloaded accept queue) and upstream.connectTimeout.'
  },
  {
    code: 'URR',
    details: 'connection_reset',
    status: 502,
    ...UPSTREAM,
    alternativeDetails: ['upstream_closed_connection'],
    meaning: 'the upstream reset or closed the connection before a full response',
    message: 'The upstream service closed the connection unexpectedly',
    check: "Check the upstream's logs for crashes or restarts, and keep-alive timeouts shorter than the gateway's."
  },
  {
    code: 'URT',
    details: 'response_timeout',
    status: 504,
    ...UPSTREAM,
    alternativeDetails: ['body_timeout'],
    meaning: 'no response headers (or body progress) within responseTimeout',
    message: 'The upstream service did not respond in time',
    check: 'The upstream is slow: check its latency and load, then upstream.responseTimeout.'
  },
  {
    code: 'EPI',
    details: 'broken_pipe',
    status: 502,
    ...UPSTREAM,
    meaning: 'the upstream went away while the request body was being sent',
    message: 'The upstream service closed the connection while receiving the request',
    check: 'The upstream stopped reading the request body: check its body-size limits and logs.'
  },
  {
    code: 'CAB',
    details: 'connection_aborted',
    status: 502,
    ...UPSTREAM,
    meaning: 'the local side aborted the connection',
    message: 'The connection to the upstream service was aborted',
    check: "Check the gateway host's network stack (local socket kills, conntrack, resource limits)."
  },
  {
    code: 'NRS',
    details: 'network_reset',
    status: 502,
    ...UPSTREAM,
    meaning: 'the network reset the connection',
    message: 'The network connection to the upstream service was reset',
    check: 'Check the network path between the gateway and the upstream.'
  },
  {
    code: 'DNS',
    details: 'dns_not_found',
    status: 502,
    ...UPSTREAM,
    alternativeDetails: ['dns_temporary_failure'],
    meaning: 'the upstream host name does not resolve',
    message: "The upstream service's host name could not be resolved",
    check: 'Resolve the target host from the gateway host; dns_temporary_failure points at the resolver, dns_not_found at the name.'
  },
  {
    code: 'NRH',
    details: 'host_unreachable',
    status: 502,
    ...UPSTREAM,
    alternativeDetails: ['network_unreachable'],
    meaning: 'no route to the upstream',
    message: 'The upstream service is unreachable',
    check: 'Check routes and firewalls from the gateway host to error_target.'
  },
  {
    code: 'NHU',
    details: 'no_healthy_upstreams',
    status: 503,
    category: 'upstream',
    source: 'LoadBalancer',
    meaning: 'every target of the API is marked unhealthy',
    message: 'No healthy upstream service is available',
    check: "Every target failed its health checks: check the targets and the API's healthCheck settings."
  },
  {
    code: 'UPE',
    details: 'upstream_protocol_error',
    status: 502,
    ...UPSTREAM,
    alternativeDetails: ['upstream_invalid_status', 'upstream_headers_too_large'],
    meaning: 'the upstream answered, but not with valid HTTP',
    message: 'The upstream service sent an invalid response',
    check: 'The port may serve another protocol, or the upstream wrote a malformed response: curl it directly.'
  },
  {
    code: 'UOF',
    details: 'upstream_overflow',
    status: 503,
    ...UPSTREAM,
    meaning: "the gateway's own limit on in-flight upstream requests is full",
    message: 'Too many requests are in flight to the upstream service',
    check: "The API's in-flight limit (circuitBreaker.capacity) is full: the upstream is slow or the limit is low."
  },
  {
    code: 'URS',
    details: 'upstream_response_status',
    status: null,
    category: 'upstream',
    source: 'Upstream',
    meaning: 'the upstream was reached and itself answered 5xx; upstream_status is set',
    message: 'The upstream service answered with an error',
    check: 'The upstream itself failed: page its owners with upstream_status and request_id; the gateway is fine.'
  },
  {
    code: 'CBO',
    details: 'circuit_breaker_open',
    status: 503,
    category: 'upstream',
    source: 'CircuitBreaker',
    retryAfter: true,
    meaning: 'the breaker for this upstream is open or half-open and busy; circuit_breaker_state is set',
    message: 'The upstream service is temporarily unavailable',
    check: 'The breaker opened after upstream failures: look at the flags logged just before it opened.'
  },
  // Authentication and authorisation
  {
    code: 'AMF',
    details: 'auth_field_missing',
    status: 401,
    category: 'auth',
    source: 'ApiKeyAuth',
    sources: ['ApiKeyAuth', 'JwtAuth'],
    meaning: 'no credential where the API expects one',
    message: 'Authorization field missing',
    check: 'The client sent no credential: check the header name the API expects.'
  },
  {
    code: 'IHD',
    details: 'invalid_header',
    status: 400,
    category: 'client',
    source: 'RequestValidation',
    sources: ['ApiKeyAuth', 'JwtAuth', 'RequestValidation'],
    alternativeDetails: ['invalid_content_length', 'duplicate_content_length', 'content_length_with_transfer_encoding', 'invalid_transfer_encoding', 'invalid_chunked_encoding', 'invalid_method', 'invalid_request_line', 'invalid_path', 'malformed_request'],
    meaning: 'malformed credential header or request head (Bearer with no token, bad scheme, bad Content-Length, CL+TE, bad method)',
    message: 'The request is malformed',
    check: "The client's request is malformed (see response_code_details): fix the client."
  },
  {
    code: 'AKI',
    details: 'api_key_invalid',
    status: 401,
    category: 'auth',
    source: 'ApiKeyAuth',
    meaning: 'unknown or revoked key',
    message: 'Access to this API has been disallowed',
    check: 'The key is unknown or revoked: check consumer and the key store.'
  },
  {
    code: 'AKE',
    details: 'api_key_expired',
    status: 401,
    category: 'auth',
    source: 'ApiKeyAuth',
    meaning: 'the key is known but past its expiry',
    message: 'The API key has expired',
    check: "The consumer's key expired: issue a new one or extend expiresAt."
  },
  {
    code: 'TKE',
    details: 'token_expired',
    status: 401,
    category: 'auth',
    source: 'JwtAuth',
    meaning: 'JWT exp is past',
    message: 'The token has expired',
    check: 'The client sent an expired token: check its token refresh and clock.'
  },
  {
    code: 'TKN',
    details: 'token_not_yet_valid',
    status: 401,
    category: 'auth',
    source: 'JwtAuth',
    meaning: 'JWT nbf is in the future',
    message: 'The token is not valid yet',
    check: 'Check clock skew between the token issuer and the gateway (and the clockTolerance setting).'
  },
  {
    code: 'TKI',
    details: 'token_invalid',
    status: 401,
    category: 'auth',
    source: 'JwtAuth',
    meaning: 'malformed token, bad signature, alg: none, disallowed algorithm',
    message: 'The token is invalid',
    check: "Check the token's issuer keys and algorithm against the API's jwt settings."
  },
  {
    code: 'TCV',
    details: 'token_claims_invalid',
    status: 401,
    category: 'auth',
    source: 'JwtAuth',
    meaning: 'iss/aud/required claim check failed',
    message: 'The token claims are not accepted',
    check: "Compare the token's iss/aud/claims with the API's issuer, audience and requiredClaims."
  },
  {
    code: 'ACD',
    details: 'access_denied',
    status: 403,
    category: 'auth',
    source: 'ApiKeyAuth',
    sources: ['ApiKeyAuth', 'JwtAuth'],
    meaning: "valid identity that may not use this API (key's API list, required scope)",
    message: 'Access to this API has been disallowed',
    check: "The consumer is known but not allowed here: check the key's apis list or the token's scopes."
  },
  {
    code: 'EAD',
    details: 'external_auth_denied',
    status: 403,
    category: 'auth',
    source: 'ExternalAuth',
    meaning: 'the external auth service said no',
    message: 'Access denied',
    check: "The external auth service denied the request: check that service's decision log."
  },
  {
    code: 'EAE',
    details: 'external_auth_error',
    status: 503,
    category: 'auth',
    source: 'ExternalAuth',
    meaning: 'the external auth service could not be asked (down, timeout, 5xx); target = its host:port',
    message: 'The authorization service is unavailable',
    check: 'The external auth service at error_target is down, slow or failing: page its owners.'
  },
  {
    code: 'CRQ',
    details: 'client_certificate_required',
    status: 401,
    category: 'auth',
    source: 'MtlsAuth',
    meaning: 'mTLS API, no client certificate',
    message: 'A client certificate is required',
    check: 'The client did not present a certificate: check its TLS client configuration.'
  },
  {
    code: 'CMM',
    details: 'client_certificate_mismatch',
    status: 403,
    category: 'auth',
    source: 'MtlsAuth',
    meaning: 'client certificate not in the allowed list',
    message: 'The client certificate is not allowed',
    check: "Compare the client certificate's sha256 fingerprint with the API's allowedFingerprints."
  },
  // Rate limit and quota
  {
    code: 'RLT',
    details: 'rate_limited',
    status: 429,
    category: 'rate_limit',
    source: 'RateLimit',
    retryAfter: true,
    meaning: 'more requests in the window than allowed',
    message: 'Rate limit exceeded',
    check: "The consumer exceeds the API's rateLimit: expected behaviour unless the limit is wrong."
  },
  {
    code: 'QEX',
    details: 'quota_exceeded',
    status: 403,
    category: 'rate_limit',
    source: 'Quota',
    meaning: "the consumer's quota for the period is used up",
    message: 'Quota exceeded',
    check: 'The consumer used its quota for the period: x-quota-reset says when it renews.'
  },
  {
    code: 'RLE',
    details: 'rate_limit_store_error',
    status: 503,
    category: 'rate_limit',
    source: 'RateLimit',
    sources: ['RateLimit', 'Quota'],
    meaning: 'the shared store (Redis) failed and the API is configured fail-closed; target = the store host:port',
    message: 'The rate limit service is unavailable',
    check: 'Redis at error_target is down or slow: check it; failMode: open would let traffic through meanwhile.'
  },
  // Request
  {
    code: 'BTL',
    details: 'body_too_large',
    status: 413,
    ...CLIENT,
    meaning: "body larger than the API's bodyLimit (declared or streamed)",
    message: 'Request body is too large',
    check: "The client sent more than the API's bodyLimit: fix the client or raise the limit."
  },
  {
    code: 'CLM',
    details: 'content_length_missing',
    status: 411,
    ...CLIENT,
    meaning: 'the API requires Content-Length and none was sent',
    message: 'Content-Length is required',
    check: 'The client streamed a body without Content-Length to an API that requires it.'
  },
  {
    code: 'BIV',
    details: 'body_invalid',
    status: 400,
    ...CLIENT,
    alternativeDetails: ['schema_validation_failed'],
    meaning: "body does not parse, or fails the API's schema",
    message: 'Request body is invalid',
    check: "The client's body does not parse or fails the API's schema."
  },
  {
    code: 'UMT',
    details: 'unsupported_media_type',
    status: 415,
    ...CLIENT,
    meaning: 'content type the API does not accept',
    message: 'Unsupported media type',
    check: "The client's Content-Type is not in the API's contentTypes."
  },
  {
    code: 'HTL',
    details: 'headers_too_large',
    status: 431,
    ...CLIENT,
    meaning: 'request head larger than the server allows',
    message: 'Request header fields too large',
    check: 'The client sent oversized headers (often a cookie pile-up).'
  },
  {
    code: 'RTO',
    details: 'request_timeout',
    status: 408,
    ...CLIENT,
    meaning: 'the client was too slow to send its request',
    message: 'Request timeout',
    check: 'The client was too slow sending its request (slow network or a slowloris attempt): see server.requestTimeout.'
  },
  {
    code: 'NRF',
    details: 'no_route',
    status: 404,
    category: 'client',
    source: 'Router',
    meaning: 'no API matches the path',
    message: 'No API matches this path',
    check: "No API prefix matches the path: check the client's URL and the configured prefixes."
  },
  {
    code: 'MNA',
    details: 'method_not_allowed',
    status: 405,
    category: 'client',
    source: 'Router',
    meaning: 'the API does not accept this method',
    message: 'Method not allowed',
    check: "The client used a method not in the API's methods list."
  },
  {
    code: 'CDC',
    details: 'client_disconnected',
    status: 499,
    category: 'client',
    source: 'Client',
    meaning: 'the client went away before the response was complete',
    message: 'Client closed request',
    check: 'The client gave up: compare latency_total with its timeout; many at once point at slowness upstream.'
  },
  // Gateway itself
  {
    code: 'GIE',
    details: 'gateway_internal_error',
    status: 500,
    category: 'gateway',
    source: 'Gateway',
    meaning: 'an unexpected exception inside the gateway',
    message: 'Internal gateway error',
    check: "A gateway bug: find the stack in the gateway's error log by request_id."
  },
  {
    code: 'OVL',
    details: 'gateway_overloaded',
    status: 503,
    category: 'gateway',
    source: 'LoadShedding',
    retryAfter: true,
    meaning: 'the process sheds load (event-loop delay, heap)',
    message: 'The gateway is overloaded',
    check: 'The gateway process is saturated: scale out or look for a hot path (event-loop delay, heap).'
  },
  {
    code: 'SHD',
    details: 'gateway_shutting_down',
    status: 503,
    category: 'gateway',
    source: 'Gateway',
    meaning: 'a request that arrived while the gateway drains',
    message: 'The gateway is shutting down',
    check: 'Expected during a deploy; if it lasts, check that the load balancer stops sending to draining instances.'
  }
]

function freezeRow (row: FlagRow): FlagDefinition {
  return Object.freeze({
    code: row.code,
    details: row.details,
    alternativeDetails: Object.freeze([...(row.alternativeDetails ?? [])]),
    status: row.status,
    category: row.category,
    source: row.source,
    sources: Object.freeze([...(row.sources ?? [row.source])]),
    meaning: row.meaning,
    message: row.message,
    check: row.check,
    retryAfter: row.retryAfter ?? false
  })
}

/** Every flag, in the order of CONTRACT.md section 1. */
export const flagList: readonly FlagDefinition[] = Object.freeze(rows.map(freezeRow))

/** The catalogue keyed by code. */
export const flags: Readonly<Record<string, FlagDefinition>> = Object.freeze(
  Object.fromEntries(flagList.map((f) => [f.code, f]))
)

export type FlagCode = string

export function isFlag (code: unknown): code is FlagCode {
  return typeof code === 'string' && Object.hasOwn(flags, code)
}

export function getFlag (code: string): FlagDefinition {
  const def = flags[code]
  if (def === undefined) throw new TypeError(`unknown Faultline flag: ${JSON.stringify(code)}`)
  return def
}
