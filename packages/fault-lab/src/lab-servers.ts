// What each fault-lab server is: its scheme, what its hit counter counts, and how to
// build it (not yet listening). startFaultLab() binds them all to 127.0.0.1.
import http from 'node:http'
import https from 'node:https'
import net from 'node:net'
import { chain, type CertBundle } from './certs.js'
import type { Pki } from './pki.js'
import type { RequestHandler } from './upstream-handler.js'

/** Servers started with a TLS certificate, plus the two that must be dialled as https. */
export const TLS_SERVER_NAMES = [
  'tlsGood',
  'tlsExpired',
  'tlsNotYetValid',
  'tlsWrongHost',
  'tlsSelfSigned',
  'tlsUnknownCa',
  'tlsIncompleteChain',
  'tlsOnly13',
  'tlsClientCert12',
  'plaintextOnTlsPort',
  'tlsHang'
] as const

export const LISTENING_SERVER_NAMES = ['ok', ...TLS_SERVER_NAMES, 'hangHeaders'] as const

export type TlsServerName = typeof TLS_SERVER_NAMES[number]
export type ListeningServerName = typeof LISTENING_SERVER_NAMES[number]

export interface LabServerSpec {
  /** Scheme of the URL a client should dial. */
  scheme: 'http' | 'https'
  /** What `hits[name]` counts: HTTP requests received, or accepted TCP connections. */
  counts: 'requests' | 'connections'
  create: () => net.Server
}

export function labServerSpecs (pki: Pki, upstream: RequestHandler): Record<ListeningServerName, LabServerSpec> {
  const tlsUpstream = (cert: CertBundle, certPem: string, extra: https.ServerOptions = {}): LabServerSpec => ({
    scheme: 'https',
    counts: 'requests',
    create: () => https.createServer({ key: cert.key, cert: certPem, ...extra }, upstream)
  })

  return {
    ok: { scheme: 'http', counts: 'requests', create: () => http.createServer(upstream) },
    tlsGood: tlsUpstream(pki.good, chain(pki.good)),
    tlsExpired: tlsUpstream(pki.expired, chain(pki.expired)),
    tlsNotYetValid: tlsUpstream(pki.notYetValid, chain(pki.notYetValid)),
    tlsWrongHost: tlsUpstream(pki.wrongHost, chain(pki.wrongHost)),
    tlsSelfSigned: tlsUpstream(pki.selfSigned, chain(pki.selfSigned)),
    tlsUnknownCa: tlsUpstream(pki.unknownCa, chain(pki.unknownCa)),
    // The leaf alone: a client trusting only the root cannot link it to the intermediate.
    tlsIncompleteChain: tlsUpstream(pki.good, pki.good.cert),
    tlsOnly13: tlsUpstream(pki.good, chain(pki.good), { minVersion: 'TLSv1.3' }),
    // TLS 1.2 so a missing client certificate is refused with an alert during the handshake
    // (with 1.3 the client would only learn about it after its handshake completed).
    tlsClientCert12: tlsUpstream(pki.good, chain(pki.good), {
      maxVersion: 'TLSv1.2',
      requestCert: true,
      rejectUnauthorized: true,
      // The intermediate too, so a client sending only its leaf (pki.client.cert) is accepted.
      ca: [pki.rootCa.cert, pki.intermediateCa.cert]
    }),
    // Plain HTTP: a TLS ClientHello gets a "400 Bad Request" back, never a request event.
    plaintextOnTlsPort: { scheme: 'https', counts: 'connections', create: () => http.createServer(upstream) },
    // Accepts and stays silent: a TLS handshake never completes. A client giving up may
    // reset the connection; a raw socket without an 'error' listener would crash the process.
    tlsHang: { scheme: 'https', counts: 'connections', create: () => net.createServer((socket) => socket.on('error', ignore)) },
    // Reads the request, never answers.
    hangHeaders: { scheme: 'http', counts: 'requests', create: () => http.createServer((req) => { req.resume() }) }
  }
}

function ignore (): void {}
