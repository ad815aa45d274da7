// A catalogue of the lab's failure modes and the Faultline response flag a gateway in
// front of them should emit. Used by the demo tour and by tests that walk every fault.
import type { FaultLab, FaultLabServerName } from './fault-lab.js'

/** Faultline response flags the lab can provoke. */
export type FaultFlag =
  | 'TLE' // upstream certificate expired
  | 'TLI' // upstream certificate not yet valid
  | 'TLM' // upstream certificate does not match the hostname
  | 'TLN' // upstream certificate self-signed or from an unknown CA
  | 'TLC' // upstream sent an incomplete chain
  | 'TLP' // TLS protocol version mismatch, or plaintext on a TLS port
  | 'TLA' // upstream sent a TLS alert
  | 'UCF' // connection refused
  | 'UCT' // connect (TCP + TLS handshake) timeout
  | 'URR' // upstream reset or closed the connection
  | 'URT' // upstream response timeout
  | 'UPE' // upstream sent invalid HTTP
  | 'URS' // upstream answered 5xx

export interface FaultLabRoute {
  /** Which lab server to dial. */
  server: FaultLabServerName
  /** Path (and query) to request on it. */
  path: string
  /** What the upstream does. */
  does: string
  /** The flag a gateway should emit; null when the upstream behaves (the answer is passed through). */
  flag: FaultFlag | null
  /** What the gateway must be configured with for the flag to appear, when anything. */
  when?: string
}

export const faultLabRoutes = {
  ok: { server: 'ok', path: '/', does: '200 JSON echo of method, path and query', flag: null },
  health: { server: 'ok', path: '/health', does: '200 JSON', flag: null },
  echoHeaders: { server: 'ok', path: '/echo-headers', does: '200 JSON echo including the request headers', flag: null },
  status404: { server: 'ok', path: '/status/404', does: 'answers 404 with a small JSON body', flag: null },
  status500: { server: 'ok', path: '/status/500', does: 'answers 500 with a small JSON body', flag: 'URS' },
  status502: { server: 'ok', path: '/status/502', does: 'answers 502 with a small JSON body', flag: 'URS' },
  status503: { server: 'ok', path: '/status/503', does: 'answers 503 with a small JSON body', flag: 'URS' },
  slow: {
    server: 'ok',
    path: '/slow?ms=5000',
    does: 'waits ms (at most 60 s) before answering 200',
    flag: 'URT',
    when: 'the response timeout is shorter than ms'
  },
  slowBody: {
    server: 'ok',
    path: '/slow-body?ms=5000',
    does: 'sends 200 headers and a first chunk at once, the rest of the body ms later',
    flag: 'URT',
    when: 'a body/idle timeout shorter than ms; the response has already started, so the flag can only reach the access log'
  },
  resetMidBody: {
    server: 'ok',
    path: '/reset-mid-body',
    does: 'sends 200 headers and part of a chunked body, then a TCP RST',
    flag: 'URR',
    when: 'the response has already started: the flag can only reach the access log'
  },
  closeMidBody: {
    server: 'ok',
    path: '/close-mid-body',
    does: 'sends 200 headers and part of a chunked body, then closes (FIN) without finishing it',
    flag: 'URR',
    when: 'the response has already started: the flag can only reach the access log'
  },
  reset: { server: 'ok', path: '/reset', does: 'reads the request, then a TCP RST before any response', flag: 'URR' },
  close: { server: 'ok', path: '/close', does: 'reads the request, then closes (FIN) before any response', flag: 'URR' },
  badStatus: { server: 'ok', path: '/bad-status', does: 'answers "HTTP/1.1 999 Weird"', flag: 'UPE' },
  garbage: { server: 'ok', path: '/garbage', does: 'answers "HELLO THIS IS NOT HTTP" and closes', flag: 'UPE' },
  hugeHeader: {
    server: 'ok',
    path: '/huge-header',
    does: 'answers 200 with a single 70 KB header',
    flag: 'UPE',
    when: 'the client header limit is below 70 KB (Node and undici default to 16 KB)'
  },
  tlsGood: { server: 'tlsGood', path: '/', does: 'valid localhost/127.0.0.1 certificate with the full chain', flag: null, when: 'the gateway trusts pki.rootCa' },
  tlsExpired: { server: 'tlsExpired', path: '/', does: 'certificate valid 2020-01-01 .. 2021-01-01', flag: 'TLE' },
  tlsNotYetValid: { server: 'tlsNotYetValid', path: '/', does: 'certificate valid 2099-01-01 .. 2100-01-01', flag: 'TLI' },
  tlsWrongHost: { server: 'tlsWrongHost', path: '/', does: 'certificate for other.example only', flag: 'TLM' },
  tlsSelfSigned: { server: 'tlsSelfSigned', path: '/', does: 'self-signed certificate', flag: 'TLN' },
  tlsUnknownCa: { server: 'tlsUnknownCa', path: '/', does: 'certificate signed by a root the client does not trust', flag: 'TLN' },
  tlsIncompleteChain: { server: 'tlsIncompleteChain', path: '/', does: 'sends the leaf without its intermediate', flag: 'TLC' },
  tlsOnly13: { server: 'tlsOnly13', path: '/', does: 'accepts TLS 1.3 only', flag: 'TLP', when: 'the gateway is limited to TLS 1.2 (maxVersion TLSv1.2)' },
  tlsClientCert12: {
    server: 'tlsClientCert12',
    path: '/',
    does: 'TLS 1.2, requires a client certificate from pki.rootCa, sends an alert to clients without one',
    flag: 'TLA',
    when: 'the gateway sends no client certificate'
  },
  plaintextOnTlsPort: { server: 'plaintextOnTlsPort', path: '/', does: 'plain HTTP on a port dialled as https', flag: 'TLP' },
  tlsHang: {
    server: 'tlsHang',
    path: '/',
    does: 'accepts TCP and never answers the TLS handshake',
    flag: 'UCT',
    when: 'the connect timeout covers the TLS handshake'
  },
  refused: { server: 'refused', path: '/', does: 'nothing listens on the port', flag: 'UCF' },
  hangHeaders: { server: 'hangHeaders', path: '/', does: 'reads the request, never answers', flag: 'URT', when: 'a response timeout is set' }
} as const satisfies Record<string, FaultLabRoute>

export type FaultLabRouteName = keyof typeof faultLabRoutes

/** Full URL of a catalogued route on a running lab, e.g. routeUrl(lab, 'status503'). */
export function routeUrl (lab: Pick<FaultLab, 'urls'>, name: FaultLabRouteName): string {
  const route: FaultLabRoute = faultLabRoutes[name]
  return lab.urls[route.server] + route.path
}
