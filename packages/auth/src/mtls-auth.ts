/**
 * mTLS: the client certificate presented on the TLS connection, pinned by sha256 fingerprint.
 * Needs an HTTPS server that requests certificates without rejecting the handshake
 * (`requestCert: true, rejectUnauthorized: false`), so that the answer can be CRQ or CMM.
 */
import type { TLSSocket } from 'node:tls'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { FaultlineError, formatCertificateSubject } from '@faultline/core'
import type { Authenticator, MtlsAuthOptions } from './options.js'

const SOURCE = 'MtlsAuth'

/** `AB:CD:...` or `abcd...` to `abcd...`. */
export function normalizeFingerprint (fingerprint: string): string {
  return fingerprint.replace(/:/g, '').toLowerCase()
}

export function createMtlsAuthenticator (options: MtlsAuthOptions): Authenticator {
  const list = options.allowedFingerprints
  if (!Array.isArray(list) || list.length === 0) {
    throw new TypeError(`@faultline/auth: option "allowedFingerprints" must be a non-empty array of sha256 fingerprints, got ${JSON.stringify(list)}`)
  }
  const allowed = new Set(list.map((f, i) => {
    const n = typeof f === 'string' ? normalizeFingerprint(f) : ''
    if (!/^[0-9a-f]{64}$/.test(n)) {
      throw new TypeError(`@faultline/auth: option "allowedFingerprints[${i}]" must be a sha256 fingerprint (64 hex digits, colons allowed), got ${JSON.stringify(f)}`)
    }
    return n
  }))

  function authenticate (request: FastifyRequest, reply: FastifyReply): void {
    const socket = request.raw.socket as Partial<TLSSocket>
    const cert = typeof socket.getPeerCertificate === 'function' ? socket.getPeerCertificate() : undefined
    if (cert === undefined || cert === null || typeof cert.fingerprint256 !== 'string') {
      throw new FaultlineError('CRQ', { source: SOURCE })
    }
    const record = reply.faultline
    if (record !== null) record.consumer = formatCertificateSubject(cert.subject as unknown as Record<string, string>)
    // Pinning by fingerprint: possession of the private key was proven by the handshake, so a
    // listed certificate is accepted whoever issued it; anything else is CMM.
    if (!allowed.has(normalizeFingerprint(cert.fingerprint256))) throw new FaultlineError('CMM', { source: SOURCE })
  }

  return { source: SOURCE, authenticate }
}
