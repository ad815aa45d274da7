import t from 'tap'
import { flagList, flags, getFlag } from '@faultline/core'

// Every flag of CONTRACT.md section 1 with its status, category and default source.
const contract: Array<[string, string, number | null, string, string]> = [
  ['TLE', 'tls_certificate_expired', 502, 'upstream', 'UpstreamProxy'],
  ['TLI', 'tls_certificate_invalid', 502, 'upstream', 'UpstreamProxy'],
  ['TLM', 'tls_hostname_mismatch', 502, 'upstream', 'UpstreamProxy'],
  ['TLN', 'tls_certificate_untrusted', 502, 'upstream', 'UpstreamProxy'],
  ['TLC', 'tls_certificate_chain_incomplete', 502, 'upstream', 'UpstreamProxy'],
  ['TLP', 'tls_protocol_version_mismatch', 502, 'upstream', 'UpstreamProxy'],
  ['TLA', 'tls_alert_handshake_failure', 502, 'upstream', 'UpstreamProxy'],
  ['TLH', 'tls_handshake_failed', 502, 'upstream', 'UpstreamProxy'],
  ['UCF', 'connection_refused', 502, 'upstream', 'UpstreamProxy'],
  ['UCT', 'connection_timeout', 504, 'upstream', 'UpstreamProxy'],
  ['URR', 'connection_reset', 502, 'upstream', 'UpstreamProxy'],
  ['URT', 'response_timeout', 504, 'upstream', 'UpstreamProxy'],
  ['EPI', 'broken_pipe', 502, 'upstream', 'UpstreamProxy'],
  ['CAB', 'connection_aborted', 502, 'upstream', 'UpstreamProxy'],
  ['NRS', 'network_reset', 502, 'upstream', 'UpstreamProxy'],
  ['DNS', 'dns_not_found', 502, 'upstream', 'UpstreamProxy'],
  ['NRH', 'host_unreachable', 502, 'upstream', 'UpstreamProxy'],
  ['NHU', 'no_healthy_upstreams', 503, 'upstream', 'LoadBalancer'],
  ['UPE', 'upstream_protocol_error', 502, 'upstream', 'UpstreamProxy'],
  ['UOF', 'upstream_overflow', 503, 'upstream', 'UpstreamProxy'],
  ['URS', 'upstream_response_status', null, 'upstream', 'Upstream'],
  ['CBO', 'circuit_breaker_open', 503, 'upstream', 'CircuitBreaker'],
  ['AMF', 'auth_field_missing', 401, 'auth', 'ApiKeyAuth'],
  ['IHD', 'invalid_header', 400, 'client', 'RequestValidation'],
  ['AKI', 'api_key_invalid', 401, 'auth', 'ApiKeyAuth'],
  ['AKE', 'api_key_expired', 401, 'auth', 'ApiKeyAuth'],
  ['TKE', 'token_expired', 401, 'auth', 'JwtAuth'],
  ['TKN', 'token_not_yet_valid', 401, 'auth', 'JwtAuth'],
  ['TKI', 'token_invalid', 401, 'auth', 'JwtAuth'],
  ['TCV', 'token_claims_invalid', 401, 'auth', 'JwtAuth'],
  ['ACD', 'access_denied', 403, 'auth', 'ApiKeyAuth'],
  ['EAD', 'external_auth_denied', 403, 'auth', 'ExternalAuth'],
  ['EAE', 'external_auth_error', 503, 'auth', 'ExternalAuth'],
  ['CRQ', 'client_certificate_required', 401, 'auth', 'MtlsAuth'],
  ['CMM', 'client_certificate_mismatch', 403, 'auth', 'MtlsAuth'],
  ['RLT', 'rate_limited', 429, 'rate_limit', 'RateLimit'],
  ['QEX', 'quota_exceeded', 403, 'rate_limit', 'Quota'],
  ['RLE', 'rate_limit_store_error', 503, 'rate_limit', 'RateLimit'],
  ['BTL', 'body_too_large', 413, 'client', 'RequestValidation'],
  ['CLM', 'content_length_missing', 411, 'client', 'RequestValidation'],
  ['BIV', 'body_invalid', 400, 'client', 'RequestValidation'],
  ['UMT', 'unsupported_media_type', 415, 'client', 'RequestValidation'],
  ['HTL', 'headers_too_large', 431, 'client', 'RequestValidation'],
  ['RTO', 'request_timeout', 408, 'client', 'RequestValidation'],
  ['NRF', 'no_route', 404, 'client', 'Router'],
  ['MNA', 'method_not_allowed', 405, 'client', 'Router'],
  ['CDC', 'client_disconnected', 499, 'client', 'Client'],
  ['GIE', 'gateway_internal_error', 500, 'gateway', 'Gateway'],
  ['OVL', 'gateway_overloaded', 503, 'gateway', 'LoadShedding'],
  ['SHD', 'gateway_shutting_down', 503, 'gateway', 'Gateway']
]

t.test('the catalogue holds exactly the flags of the contract', async (t) => {
  t.same(flagList.map((f) => f.code).sort(), contract.map((row) => row[0]).sort())
})

for (const [code, details, status, category, source] of contract) {
  t.test(`${code} has the contract's details, status, category and source`, async (t) => {
    const f = getFlag(code)
    t.equal(f.details, details)
    t.equal(f.status, status)
    t.equal(f.category, category)
    t.equal(f.source, source)
    t.ok(f.message.length > 0, 'has a client message')
    t.ok(f.check.length > 0, 'has a first thing to check')
  })
}

t.test('RLT, CBO and OVL send Retry-After; nothing else does', async (t) => {
  t.same(flagList.filter((f) => f.retryAfter).map((f) => f.code).sort(), ['CBO', 'OVL', 'RLT'])
})

t.test('client messages never repeat an internal detail', async (t) => {
  for (const f of flagList) {
    t.notMatch(f.message, /[_{}]|ECONN|ERR_|undici/, `${f.code} message is a human sentence`)
  }
})

t.test('getFlag rejects an unknown code and the catalogue is frozen', async (t) => {
  t.throws(() => getFlag('XYZ'), /unknown Faultline flag/)
  t.ok(Object.isFrozen(flags))
  t.ok(Object.isFrozen(flags.UCF))
})
