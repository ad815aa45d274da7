/**
 * Every upstream failure of CONTRACT.md's upstream tables, against real loopback servers
 * (the fault lab: real TLS with certificates made here, real closed ports, real resets),
 * asserted on the client's answer and on the parsed access-log line.
 */
import net from 'node:net'
import t, { type Test } from 'tap'
import { request } from 'undici'
import { startFaultLab, type FaultLab } from '@faultline/fault-lab'
import { startGateway, type TestApi, type TestGateway } from '../../../test/helpers/gateway.js'
import { startDnsServer, RCODE, type TestDnsServer } from '../../../test/helpers/dns-server.js'
import type { AccessLine } from '../../../test/helpers/log-capture.js'

let lab: FaultLab
let gw: TestGateway
let dns: TestDnsServer
let handshakeCloser: net.Server
let closerPort: number

function hostPort (url: string): string {
  const u = new URL(url)
  return `${u.hostname}:${u.port}`
}

t.before(async () => {
  lab = await startFaultLab()
  dns = await startDnsServer((name) => name.startsWith('servfail') ? RCODE.SERVFAIL : RCODE.NXDOMAIN, { 'lab.test': '127.0.0.1' })
  // Reads the ClientHello, then closes: the peer went away mid-handshake.
  handshakeCloser = net.createServer((socket) => { socket.once('data', () => socket.end()) })
  await new Promise<void>((resolve) => handshakeCloser.listen(0, '127.0.0.1', resolve))
  closerPort = (handshakeCloser.address() as net.AddressInfo).port

  const ca = lab.pki.rootCa.cert
  const api = (name: string, target: string, extra: Partial<TestApi['upstream']> = {}): TestApi => ({
    name,
    prefix: `/${name}`,
    upstream: { targets: [target], tls: { ca }, connectTimeout: 1000, responseTimeout: 2000, ...extra }
  })
  gw = await startGateway([
    api('ok', lab.urls.ok),
    api('tls-good', lab.urls.tlsGood),
    api('tls-good-localhost', lab.localhostUrls.tlsGood),
    api('tls-expired', lab.urls.tlsExpired),
    api('tls-not-yet-valid', lab.urls.tlsNotYetValid),
    api('tls-wrong-host', lab.urls.tlsWrongHost),
    api('tls-wrong-host-sni', lab.urls.tlsGood, { tls: { ca, servername: 'payments.internal' } }),
    api('tls-self-signed', lab.urls.tlsSelfSigned),
    api('tls-untrusted', lab.urls.tlsGood, { tls: {} }),
    api('tls-incomplete-chain', lab.urls.tlsIncompleteChain),
    api('tls-old-version', lab.urls.tlsOnly13, { tls: { ca, maxVersion: 'TLSv1.2' } }),
    api('tls-plaintext', lab.urls.plaintextOnTlsPort),
    api('tls-client-cert', lab.urls.tlsClientCert12),
    api('tls-closed', `https://127.0.0.1:${closerPort}`),
    api('tls-unverified', lab.urls.tlsExpired, { tls: { rejectUnauthorized: false } }),
    api('refused', lab.urls.refused),
    api('connect-timeout', lab.urls.tlsHang, { connectTimeout: 300 }),
    api('slow', lab.urls.hangHeaders, { responseTimeout: 300 }),
    api('slow-body', lab.urls.ok, { responseTimeout: 300 }),
    api('dns-missing', `http://nowhere.test:${new URL(lab.urls.ok).port}`, { lookup: dns.lookup }),
    api('dns-failing', `http://servfail.test:${new URL(lab.urls.ok).port}`, { lookup: dns.lookup }),
    api('dns-ok', `http://lab.test:${new URL(lab.urls.ok).port}`, { lookup: dns.lookup })
  ])
})

t.teardown(async () => {
  await gw?.app.close()
  await lab?.close()
  await dns?.close()
  handshakeCloser?.close()
})

interface Exchange {
  status: number
  body: string
  headers: Record<string, string | string[] | undefined>
  line: AccessLine
  bodyError?: Error
}

async function call (path: string): Promise<Exchange> {
  const before = gw.log.lines.length
  const res = await request(gw.url + path)
  let body = ''
  let bodyError: Error | undefined
  try {
    body = await res.body.text()
  } catch (err) {
    bodyError = err as Error
  }
  const lines = await gw.log.waitFor(before + 1)
  return { status: res.statusCode, body, headers: res.headers, line: lines[before], bodyError }
}

/** What every gateway-made upstream error reply must satisfy. */
function assertCleanErrorBody (t: Test, ex: Exchange, status: number): void {
  t.equal(ex.status, status, `client gets ${status}`)
  const body = JSON.parse(ex.body)
  t.same(Object.keys(body).sort(), ['error', 'message', 'request_id', 'statusCode'])
  t.equal(body.request_id, ex.line.request_id)
  t.notMatch(ex.body, /ECONN|ERR_|UND_|CERT_|SSL routines|openssl|127\.0\.0\.1|localhost|:\d{4,5}/, 'no upstream or internal detail reaches the client')
}

function assertUpstreamLine (t: Test, line: AccessLine, flag: string, details: string, target: string, status: number): void {
  t.match(line, {
    msg: 'access',
    status,
    response_flag: flag,
    response_code_details: details,
    error_category: 'upstream',
    error_source: 'UpstreamProxy',
    error_target: target,
    upstream_addr: target,
    response_source: 'gateway'
  })
  t.equal(line.upstream_status, undefined, 'no upstream status: the upstream never answered')
  t.type(line.upstream_latency, 'number', 'upstream_latency is measured on failures too')
  t.ok((line.upstream_latency as number) >= 0)
  t.ok((line.latency_total as number) >= (line.upstream_latency as number))
  t.equal(line.gateway_latency, Math.round(((line.latency_total as number) - (line.upstream_latency as number)) * 1000) / 1000)
}

t.test('control: a healthy upstream passes through with its own status and body', async (t) => {
  const ex = await call('/ok/items/1?q=2')
  t.equal(ex.status, 200)
  t.match(JSON.parse(ex.body), { ok: true, path: '/items/1', query: 'q=2' })
  t.match(ex.line, { status: 200, response_source: 'upstream', upstream_status: 200, upstream_addr: hostPort(lab.urls.ok), upstream_attempts: 1, api_name: 'ok', route: '/ok/*' })
  t.equal(ex.line.response_flag, undefined)
})

t.test('control: a valid certificate chain verifies, by IP SAN and by DNS name', async (t) => {
  t.equal((await call('/tls-good/')).status, 200)
  t.equal((await call('/tls-good-localhost/')).status, 200)
})

t.test('an expired certificate is TLE 502, never a 200, with the certificate named', async (t) => {
  const ex = await call('/tls-expired/')
  assertCleanErrorBody(t, ex, 502)
  assertUpstreamLine(t, ex.line, 'TLE', 'tls_certificate_expired', hostPort(lab.urls.tlsExpired), 502)
  t.equal(ex.line.tls_cert_expiry, '2021-01-01T00:00:00.000Z')
  t.equal(ex.line.tls_cert_subject, 'CN=localhost')
  t.equal(lab.hits.tlsExpired, 0, 'no request reached the upstream')
})

t.test('a not-yet-valid certificate is TLI tls_certificate_not_yet_valid', async (t) => {
  const ex = await call('/tls-not-yet-valid/')
  assertCleanErrorBody(t, ex, 502)
  assertUpstreamLine(t, ex.line, 'TLI', 'tls_certificate_not_yet_valid', hostPort(lab.urls.tlsNotYetValid), 502)
  t.equal(ex.line.tls_cert_expiry, '2100-01-01T00:00:00.000Z')
})

t.test('a certificate for another name is TLM, by IP and by servername', async (t) => {
  const ex = await call('/tls-wrong-host/')
  assertUpstreamLine(t, ex.line, 'TLM', 'tls_hostname_mismatch', hostPort(lab.urls.tlsWrongHost), 502)
  t.equal(ex.line.tls_cert_subject, 'CN=other.example')
  const sni = await call('/tls-wrong-host-sni/')
  assertUpstreamLine(t, sni.line, 'TLM', 'tls_hostname_mismatch', hostPort(lab.urls.tlsGood), 502)
  t.equal(sni.line.tls_cert_subject, 'CN=localhost')
})

t.test('a self-signed certificate is TLN tls_self_signed_certificate', async (t) => {
  const ex = await call('/tls-self-signed/')
  assertCleanErrorBody(t, ex, 502)
  assertUpstreamLine(t, ex.line, 'TLN', 'tls_self_signed_certificate', hostPort(lab.urls.tlsSelfSigned), 502)
  t.equal(ex.line.tls_cert_subject, 'CN=localhost')
})

t.test('a private CA the gateway was not given is TLN tls_certificate_untrusted', async (t) => {
  const ex = await call('/tls-untrusted/')
  assertUpstreamLine(t, ex.line, 'TLN', 'tls_certificate_untrusted', hostPort(lab.urls.tlsGood), 502)
  t.type(ex.line.tls_cert_expiry, 'string')
})

t.test('a server that omits its intermediate is TLC', async (t) => {
  const ex = await call('/tls-incomplete-chain/')
  assertCleanErrorBody(t, ex, 502)
  assertUpstreamLine(t, ex.line, 'TLC', 'tls_certificate_chain_incomplete', hostPort(lab.urls.tlsIncompleteChain), 502)
})

t.test('no common TLS version is TLP tls_protocol_version_mismatch', async (t) => {
  const ex = await call('/tls-old-version/')
  assertCleanErrorBody(t, ex, 502)
  assertUpstreamLine(t, ex.line, 'TLP', 'tls_protocol_version_mismatch', hostPort(lab.urls.tlsOnly13), 502)
})

t.test('plain HTTP on a TLS target is TLP tls_wrong_version_number', async (t) => {
  const ex = await call('/tls-plaintext/')
  assertCleanErrorBody(t, ex, 502)
  assertUpstreamLine(t, ex.line, 'TLP', 'tls_wrong_version_number', hostPort(lab.urls.plaintextOnTlsPort), 502)
})

t.test('an upstream that demands a client certificate (TLS 1.2) is TLA tls_alert_handshake_failure', async (t) => {
  const ex = await call('/tls-client-cert/')
  assertCleanErrorBody(t, ex, 502)
  assertUpstreamLine(t, ex.line, 'TLA', 'tls_alert_handshake_failure', hostPort(lab.urls.tlsClientCert12), 502)
})

t.test('a peer that closes mid-handshake is TLH', async (t) => {
  const ex = await call('/tls-closed/')
  assertCleanErrorBody(t, ex, 502)
  assertUpstreamLine(t, ex.line, 'TLH', 'tls_handshake_failed', `127.0.0.1:${closerPort}`, 502)
})

t.test('verification switched off explicitly lets an expired certificate through', async (t) => {
  const ex = await call('/tls-unverified/')
  t.equal(ex.status, 200)
  t.equal(ex.line.response_flag, undefined)
})

t.test('a closed port is UCF 502', async (t) => {
  const ex = await call('/refused/x')
  assertCleanErrorBody(t, ex, 502)
  assertUpstreamLine(t, ex.line, 'UCF', 'connection_refused', hostPort(lab.urls.refused), 502)
  t.equal(JSON.parse(ex.body).message, 'Upstream connection refused')
  t.equal(ex.line.upstream_attempts, 1)
})

t.test('a handshake that never completes is UCT 504 after connectTimeout', async (t) => {
  const ex = await call('/connect-timeout/')
  assertCleanErrorBody(t, ex, 504)
  assertUpstreamLine(t, ex.line, 'UCT', 'connection_timeout', hostPort(lab.urls.tlsHang), 504)
  t.ok((ex.line.upstream_latency as number) >= 250, `waited about connectTimeout (${String(ex.line.upstream_latency)} ms)`)
})

t.test('no response headers within responseTimeout is URT 504 response_timeout', async (t) => {
  const ex = await call('/slow/')
  assertCleanErrorBody(t, ex, 504)
  assertUpstreamLine(t, ex.line, 'URT', 'response_timeout', hostPort(lab.urls.hangHeaders), 504)
  t.ok((ex.line.upstream_latency as number) >= 250)
})

t.test('a body that stalls after the headers is URT body_timeout with response_truncated', async (t) => {
  const ex = await call('/slow-body/slow-body?ms=3000')
  t.equal(ex.status, 200, 'the status had already been sent')
  t.ok(ex.bodyError, 'the client sees a cut body')
  t.match(ex.line, { status: 200, response_flag: 'URT', response_code_details: 'body_timeout', response_truncated: true, upstream_status: 200, error_target: hostPort(lab.urls.ok) })
})

t.test('a reset before the response is URR connection_reset', async (t) => {
  const ex = await call('/ok/reset')
  assertCleanErrorBody(t, ex, 502)
  assertUpstreamLine(t, ex.line, 'URR', 'connection_reset', hostPort(lab.urls.ok), 502)
})

t.test('a close before the response is URR upstream_closed_connection', async (t) => {
  const ex = await call('/ok/close')
  assertCleanErrorBody(t, ex, 502)
  assertUpstreamLine(t, ex.line, 'URR', 'upstream_closed_connection', hostPort(lab.urls.ok), 502)
})

t.test('a reset mid-body is URR with response_truncated, not CDC', async (t) => {
  const ex = await call('/ok/reset-mid-body')
  t.equal(ex.status, 200)
  t.ok(ex.bodyError, 'the client sees a cut body')
  t.match(ex.line, { status: 200, response_flag: 'URR', response_truncated: true, upstream_status: 200, error_source: 'UpstreamProxy' })
})

t.test('bytes that are not HTTP are UPE upstream_protocol_error', async (t) => {
  const ex = await call('/ok/garbage')
  assertCleanErrorBody(t, ex, 502)
  assertUpstreamLine(t, ex.line, 'UPE', 'upstream_protocol_error', hostPort(lab.urls.ok), 502)
  t.notMatch(ex.body, /HELLO/)
})

t.test('an invalid status code is UPE upstream_invalid_status, and the gateway keeps serving', async (t) => {
  const ex = await call('/ok/bad-status')
  t.equal(ex.status, 502)
  t.match(ex.line, { response_flag: 'UPE', response_code_details: 'upstream_invalid_status', upstream_status: 999 })
  t.equal((await call('/ok/')).status, 200)
})

t.test('oversized upstream headers are UPE upstream_headers_too_large', async (t) => {
  const ex = await call('/ok/huge-header')
  assertCleanErrorBody(t, ex, 502)
  assertUpstreamLine(t, ex.line, 'UPE', 'upstream_headers_too_large', hostPort(lab.urls.ok), 502)
})

t.test('an upstream 5xx is URS, passed through untouched, and a GET 503 is not replayed', async (t) => {
  const hits = lab.hits.ok
  const ex = await call('/ok/status/503')
  t.equal(ex.status, 503)
  t.match(JSON.parse(ex.body), { status: 503 }, "the upstream's own body")
  t.equal(ex.headers['x-faultline-flag'], undefined)
  t.match(ex.line, {
    status: 503,
    response_source: 'upstream',
    response_flag: 'URS',
    response_code_details: 'upstream_response_status',
    error_category: 'upstream',
    error_source: 'Upstream',
    error_target: hostPort(lab.urls.ok),
    upstream_status: 503,
    upstream_attempts: 1
  })
  t.equal(lab.hits.ok - hits, 1, 'exactly one upstream hit')
})

t.test('an upstream 4xx passes through unflagged', async (t) => {
  const ex = await call('/ok/status/404')
  t.equal(ex.status, 404)
  t.equal(ex.line.response_flag, undefined)
  t.equal(ex.line.upstream_status, 404)
})

t.test('a name that does not resolve is DNS dns_not_found; a failing resolver dns_temporary_failure', async (t) => {
  const missing = await call('/dns-missing/')
  assertCleanErrorBody(t, missing, 502)
  assertUpstreamLine(t, missing.line, 'DNS', 'dns_not_found', `nowhere.test:${new URL(lab.urls.ok).port}`, 502)
  const failing = await call('/dns-failing/')
  assertUpstreamLine(t, failing.line, 'DNS', 'dns_temporary_failure', `servfail.test:${new URL(lab.urls.ok).port}`, 502)
  t.equal((await call('/dns-ok/')).status, 200, 'control: the same resolver answers a known name')
})
