/**
 * Transport failure detection: from the error objects Node 20 and undici 7 produce (and
 * @fastify/reply-from wraps) to a flag and a precise `response_code_details`.
 * Detection reads `code`, `syscall` and `name`; message text only where Node gives no code
 * (documented per case in shared/reference/node-error-shapes.md). Used by the proxy, and by
 * every plugin that calls a service over the network (external auth, Redis stores).
 */

export interface TransportClassification {
  flag: string
  details: string
  /** ISO 8601 notAfter of the certificate the peer presented, when one was seen. */
  tlsCertExpiry?: string
  /** Subject of the certificate the peer presented, e.g. `CN=api.example.com`. */
  tlsCertSubject?: string
}

/** What a TLS-aware connector attaches to the errors it raises (see `peerCertificate`). */
export interface PeerCertificateSummary {
  subject?: string
  expiry?: string
}

interface ErrorLike {
  name?: unknown
  code?: unknown
  syscall?: unknown
  message?: unknown
  cause?: unknown
  errors?: unknown
  peerCertificate?: PeerCertificateSummary
}

// Certificate verification failures, by OpenSSL/Node code.
const certificateCodes: Record<string, [string, string]> = {
  CERT_HAS_EXPIRED: ['TLE', 'tls_certificate_expired'],
  CERT_NOT_YET_VALID: ['TLI', 'tls_certificate_not_yet_valid'],
  CERT_REVOKED: ['TLI', 'tls_certificate_revoked'],
  CERT_SIGNATURE_FAILURE: ['TLI', 'tls_certificate_signature_invalid'],
  CRL_SIGNATURE_FAILURE: ['TLI', 'tls_certificate_signature_invalid'],
  UNABLE_TO_DECRYPT_CERT_SIGNATURE: ['TLI', 'tls_certificate_signature_invalid'],
  UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY: ['TLI', 'tls_certificate_signature_invalid'],
  ERROR_IN_CERT_NOT_BEFORE_FIELD: ['TLI', 'tls_certificate_invalid'],
  ERROR_IN_CERT_NOT_AFTER_FIELD: ['TLI', 'tls_certificate_invalid'],
  INVALID_CA: ['TLI', 'tls_certificate_invalid'],
  INVALID_PURPOSE: ['TLI', 'tls_certificate_invalid'],
  CERT_REJECTED: ['TLI', 'tls_certificate_invalid'],
  CERT_CHAIN_TOO_LONG: ['TLI', 'tls_certificate_invalid'],
  PATH_LENGTH_EXCEEDED: ['TLI', 'tls_certificate_invalid'],
  ERR_TLS_CERT_ALTNAME_INVALID: ['TLM', 'tls_hostname_mismatch'],
  HOSTNAME_MISMATCH: ['TLM', 'tls_hostname_mismatch'],
  DEPTH_ZERO_SELF_SIGNED_CERT: ['TLN', 'tls_self_signed_certificate'],
  SELF_SIGNED_CERT_IN_CHAIN: ['TLN', 'tls_self_signed_certificate'],
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: ['TLN', 'tls_certificate_untrusted'],
  UNABLE_TO_GET_ISSUER_CERT: ['TLN', 'tls_certificate_untrusted'],
  CERT_UNTRUSTED: ['TLN', 'tls_certificate_untrusted'],
  // The peer sent a leaf whose issuer is neither in its chain nor trusted here. The two real-world
  // causes (a missing intermediate, an unknown CA that sends no chain) look alike in Node; a server
  // that forgot its intermediate is far more common in production, so this is TLC (see README).
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: ['TLC', 'tls_certificate_chain_incomplete']
}

// Plain socket/system failures, by `code`.
const socketCodes: Record<string, [string, string]> = {
  ECONNREFUSED: ['UCF', 'connection_refused'],
  UND_ERR_CONNECT_TIMEOUT: ['UCT', 'connection_timeout'],
  UND_ERR_HEADERS_TIMEOUT: ['URT', 'response_timeout'],
  UND_ERR_BODY_TIMEOUT: ['URT', 'body_timeout'],
  UND_ERR_SOCKET: ['URR', 'upstream_closed_connection'],
  UND_ERR_RES_CONTENT_LENGTH_MISMATCH: ['URR', 'upstream_closed_connection'],
  EPIPE: ['EPI', 'broken_pipe'],
  ECONNABORTED: ['CAB', 'connection_aborted'],
  ENETRESET: ['NRS', 'network_reset'],
  ENOTFOUND: ['DNS', 'dns_not_found'],
  EAI_NONAME: ['DNS', 'dns_not_found'],
  EAI_NODATA: ['DNS', 'dns_not_found'],
  EAI_AGAIN: ['DNS', 'dns_temporary_failure'],
  EAI_FAIL: ['DNS', 'dns_temporary_failure'],
  EHOSTUNREACH: ['NRH', 'host_unreachable'],
  EHOSTDOWN: ['NRH', 'host_unreachable'],
  ENETUNREACH: ['NRH', 'network_unreachable'],
  ENETDOWN: ['NRH', 'network_unreachable'],
  UND_ERR_HEADERS_OVERFLOW: ['UPE', 'upstream_headers_too_large'],
  UND_ERR_INVALID_ARG: ['UPE', 'upstream_protocol_error'],
  HPE_INVALID_CONSTANT: ['UPE', 'upstream_protocol_error'],
  FST_REPLY_FROM_BAD_GATEWAY: ['UPE', 'upstream_invalid_status']
}

// Messages used where Node/undici give no distinguishing code.
const TLS_DISCONNECT_MESSAGE = 'Client network socket disconnected before secure TLS connection was established'

/** @fastify/reply-from wraps transport errors in FastifyErrors that keep the original as `cause`. */
function unwrap (err: ErrorLike): ErrorLike {
  let e = err
  for (let depth = 0; depth < 4; depth++) {
    if (e.name === 'FastifyError' && typeof e.cause === 'object' && e.cause !== null) {
      e = e.cause as ErrorLike
    } else {
      break
    }
  }
  return e
}

/** Turns OpenSSL's `ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE` into `tls_alert_handshake_failure`. */
function alertDetails (code: string): string | undefined {
  const at = code.indexOf('_ALERT_')
  if (at === -1) return undefined
  return 'tls_alert_' + code.slice(at + 7).toLowerCase()
}

function classifySslCode (code: string): [string, string] {
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'ERR_SSL_HTTP_REQUEST' || code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG') {
    return ['TLP', 'tls_wrong_version_number']
  }
  if (code.endsWith('_ALERT_PROTOCOL_VERSION') || code === 'ERR_SSL_UNSUPPORTED_PROTOCOL' ||
    code === 'ERR_SSL_NO_PROTOCOLS_AVAILABLE' || code.includes('VERSION_TOO_LOW') || code.includes('VERSION_TOO_HIGH')) {
    return ['TLP', 'tls_protocol_version_mismatch']
  }
  const alert = alertDetails(code)
  if (alert !== undefined) return ['TLA', alert]
  return ['TLH', 'tls_handshake_failed']
}

function withCertificate (result: TransportClassification, e: ErrorLike): TransportClassification {
  const peer = e.peerCertificate
  if (peer !== undefined && peer !== null) {
    if (peer.expiry !== undefined) result.tlsCertExpiry = peer.expiry
    if (peer.subject !== undefined) result.tlsCertSubject = peer.subject
  }
  return result
}

/**
 * Classifies a transport error (raw, AggregateError, or wrapped by reply-from).
 * Returns `undefined` when the error is not a recognised transport failure.
 */
export function classifyTransportError (err: unknown): TransportClassification | undefined {
  if (typeof err !== 'object' || err === null) return undefined
  const e = unwrap(err as ErrorLike)
  let code = typeof e.code === 'string' ? e.code : undefined
  let syscall = typeof e.syscall === 'string' ? e.syscall : undefined

  // Dual-stack connects fail as an AggregateError: `code` on the aggregate, the rest on its parts.
  if (Array.isArray(e.errors) && e.errors.length > 0) {
    const first = e.errors[0] as ErrorLike
    code ??= typeof first.code === 'string' ? first.code : undefined
    syscall ??= typeof first.syscall === 'string' ? first.syscall : undefined
  }

  if (code === undefined) {
    // undici's HTTP parser errors carry no code.
    if (e.name === 'HTTPParserError') return { flag: 'UPE', details: 'upstream_protocol_error' }
    // The gateway aborted its upstream request (AbortSignal) because the client went away.
    if (e.name === 'AbortError') return { flag: 'CDC', details: 'client_disconnected' }
    if (e.name === 'HeadersOverflowError') return { flag: 'UPE', details: 'upstream_headers_too_large' }
    return undefined
  }

  // Resolver failures: getaddrinfo (dns.lookup) or c-ares (dns.Resolver, custom lookups), whose
  // codes overlap with socket codes (ECONNREFUSED: the DNS server refused), so the syscall decides.
  if (syscall === 'getaddrinfo' || (syscall !== undefined && syscall.startsWith('query'))) {
    const notFound = code === 'ENOTFOUND' || code === 'ENODATA' || code === 'EAI_NONAME' || code === 'EAI_NODATA' || code === 'ENONAME'
    return { flag: 'DNS', details: notFound ? 'dns_not_found' : 'dns_temporary_failure' }
  }

  const cert = certificateCodes[code]
  if (cert !== undefined) return withCertificate({ flag: cert[0], details: cert[1] }, e)

  if (code.startsWith('ERR_SSL_')) {
    const [flag, details] = classifySslCode(code)
    return withCertificate({ flag, details }, e)
  }

  if (code === 'ECONNRESET') {
    // No syscall: either a peer that closed during the TLS handshake, or a downstream client that
    // aborted a streamed upload (message 'aborted'), which is not an upstream failure at all.
    if (syscall === undefined) {
      if (e.message === 'aborted') return { flag: 'CDC', details: 'client_disconnected' }
      if (typeof e.message === 'string' && e.message.startsWith(TLS_DISCONNECT_MESSAGE)) {
        return { flag: 'TLH', details: 'tls_handshake_failed' }
      }
    }
    // A reset while writing the request body is the same failure as EPIPE.
    if (syscall === 'write') return { flag: 'EPI', details: 'broken_pipe' }
    return { flag: 'URR', details: 'connection_reset' }
  }

  if (code === 'ETIMEDOUT') {
    // The kernel gave up connecting; opossum's ETIMEDOUT has no syscall and is not transport.
    if (syscall === 'connect') return { flag: 'UCT', details: 'connection_timeout' }
    if (syscall !== undefined) return { flag: 'URT', details: 'response_timeout' }
    return undefined
  }

  if ((code === 'EACCES' || code === 'EINVAL' || code === 'EPERM') && syscall === 'connect') {
    // Routes of type prohibit/blackhole, or a firewall rejecting locally.
    return { flag: 'NRH', details: 'host_unreachable' }
  }

  if (code === 'UND_ERR_DESTROYED' || code === 'UND_ERR_CLOSED') {
    // The gateway closed its upstream connections: it is shutting down.
    return { flag: 'SHD', details: 'gateway_shutting_down' }
  }

  if (code === 'UND_ERR_ABORTED' || code === 'ABORT_ERR') {
    // We aborted the upstream request because the client went away.
    return { flag: 'CDC', details: 'client_disconnected' }
  }

  const sock = socketCodes[code]
  if (sock !== undefined) return { flag: sock[0], details: sock[1] }
  return undefined
}

/** Formats a Node certificate subject (`{ CN, O, ... }`) as `CN=...,O=...`. */
export function formatCertificateSubject (subject: Record<string, string | string[]> | undefined | null): string | undefined {
  if (subject === undefined || subject === null) return undefined
  const parts: string[] = []
  for (const key of Object.keys(subject)) {
    const value = subject[key]
    if (Array.isArray(value)) {
      for (const v of value) parts.push(`${key}=${v}`)
    } else if (value !== undefined) {
      parts.push(`${key}=${value}`)
    }
  }
  // Most specific first, as operators read them (CN=host,O=org,C=country).
  parts.sort((a, b) => subjectOrder(a) - subjectOrder(b))
  return parts.length > 0 ? parts.join(',') : undefined
}

const order = ['CN', 'OU', 'O', 'L', 'ST', 'C']
function subjectOrder (part: string): number {
  const i = order.indexOf(part.slice(0, part.indexOf('=')))
  return i === -1 ? order.length : i
}

/** Formats a certificate's `valid_to` (`Jan  1 00:00:00 2021 GMT`) as ISO 8601. */
export function formatCertificateExpiry (validTo: string | undefined): string | undefined {
  if (validTo === undefined) return undefined
  const t = Date.parse(validTo)
  return Number.isNaN(t) ? undefined : new Date(t).toISOString()
}
