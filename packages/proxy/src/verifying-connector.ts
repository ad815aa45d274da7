/**
 * An undici connector that verifies upstream certificates itself, so that a failed verification
 * still tells which certificate was presented (tls_cert_expiry, tls_cert_subject) from the same
 * handshake: with rejectUnauthorized the failed socket is gone before it can be inspected.
 */
import type { LookupFunction } from 'node:net'
import type { TLSSocket } from 'node:tls'
import { buildConnector } from 'undici'
import { formatCertificateExpiry, formatCertificateSubject, type PeerCertificateSummary } from '@faultline/core'
import type { UpstreamTlsOptions } from './options.js'

export class UpstreamCertificateError extends Error {
  readonly code: string
  readonly peerCertificate: PeerCertificateSummary

  constructor (code: string, peerCertificate: PeerCertificateSummary) {
    super(`upstream TLS verification failed: ${code}`)
    this.name = 'UpstreamCertificateError'
    this.code = code
    this.peerCertificate = peerCertificate
  }
}

function summarize (socket: TLSSocket): PeerCertificateSummary {
  const cert = socket.getPeerCertificate()
  if (cert === null || cert === undefined || Object.keys(cert).length === 0) return {}
  return {
    subject: formatCertificateSubject(cert.subject as unknown as Record<string, string>),
    expiry: formatCertificateExpiry(cert.valid_to)
  }
}

export interface ConnectorOptions {
  tls?: UpstreamTlsOptions
  /** ms for TCP + TLS handshake. */
  connectTimeout: number
  lookup?: LookupFunction
}

export function buildVerifyingConnector (options: ConnectorOptions): buildConnector.connector {
  const tls = options.tls ?? {}
  const verify = tls.rejectUnauthorized !== false
  const base = buildConnector({
    ca: tls.ca,
    cert: tls.cert,
    key: tls.key,
    servername: tls.servername,
    minVersion: tls.minVersion,
    maxVersion: tls.maxVersion,
    timeout: options.connectTimeout,
    ...(options.lookup !== undefined ? { lookup: options.lookup } : {}),
    // Verification happens below, after the handshake, where the certificate can still be read.
    rejectUnauthorized: false,
    // No session resumption: on a resumed session Node skips the host name check.
    maxCachedSessions: 0
  })
  if (!verify) return base

  return function connect (opts, callback) {
    return base(opts, (err, socket) => {
      if (err !== null) {
        callback(err, null)
        return
      }
      const tlsSocket = socket as TLSSocket
      if (opts.protocol === 'https:' && tlsSocket.authorized === false) {
        const code = String(tlsSocket.authorizationError ?? 'CERT_UNTRUSTED')
        const error = new UpstreamCertificateError(code, summarize(tlsSocket))
        tlsSocket.destroy()
        callback(error, null)
        return
      }
      callback(null, socket)
    })
  }
}
