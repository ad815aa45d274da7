import http from 'node:http'
import net from 'node:net'
import tls from 'node:tls'
import t, { type Test } from 'tap'
import { BAD_STATUS_RESPONSE, chain, faultLabRoutes, GARBAGE_RESPONSE, routeUrl, startFaultLab, type FaultLab } from '@faultline/fault-lab'
import { get, getError, rawGet, tlsHandshake, tlsHandshakeError, waitFor } from './fixtures/loopback-clients.js'

async function labFor (t: Test): Promise<FaultLab> {
  const lab = await startFaultLab()
  t.teardown(lab.close)
  return lab
}

const portOf = (url: string): number => Number(new URL(url).port)

t.test('urls: every server on its own 127.0.0.1 port', async (t) => {
  const lab = await labFor(t)
  const urls = Object.values(lab.urls)
  t.equal(urls.length, 14)
  for (const url of urls) t.match(url, /^https?:\/\/127\.0\.0\.1:\d+$/)
  t.equal(new Set(urls.map(portOf)).size, urls.length, 'distinct ports')
  t.match(lab.urls.ok, /^http:/)
  t.match(lab.urls.tlsGood, /^https:/)
  t.match(lab.urls.plaintextOnTlsPort, /^https:/, 'plaintextOnTlsPort is meant to be dialled as https')
  t.equal(lab.localhostUrls.tlsGood, `https://localhost:${portOf(lab.urls.tlsGood)}`)
})

t.test('only loopback is accepted as host', async (t) => {
  await t.rejects(startFaultLab({ host: '0.0.0.0' as '127.0.0.1' }), /only listens on 127\.0\.0\.1/)
})

t.test('ok server routes', async (t) => {
  const lab = await labFor(t)
  const ok = lab.urls.ok

  const echo = await get(`${ok}/some/path?a=1&b=two`)
  t.equal(echo.status, 200)
  t.same(JSON.parse(echo.body), { ok: true, method: 'GET', path: '/some/path', query: 'a=1&b=two' })

  const health = await get(`${ok}/health`)
  t.equal(health.status, 200)

  for (const status of [404, 500, 502, 503]) {
    const answer = await get(`${ok}/status/${status}`)
    t.equal(answer.status, status, `/status/${status}`)
    t.same(JSON.parse(answer.body), { ok: status < 400, status, path: `/status/${status}` })
  }
  t.equal((await get(`${ok}/status/999`)).status, 400, 'out-of-range status is refused')

  const headers = JSON.parse((await get(`${ok}/echo-headers`, { headers: { 'x-probe': 'yes' } })).body)
  t.equal(headers.headers['x-probe'], 'yes')

  const posted = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const req = http.request(`${ok}/upload`, { method: 'POST', agent: false }, (res) => {
      let body = ''
      res.on('data', (chunk: Buffer) => { body += chunk.toString() })
      res.on('end', () => resolve(JSON.parse(body)))
    })
    req.on('error', reject)
    req.end('x'.repeat(12345))
  })
  t.same(posted, { ok: true, method: 'POST', path: '/upload', query: '', bodyBytes: 12345 })
})

t.test('slow routes', async (t) => {
  const lab = await labFor(t)
  const started = Date.now()
  t.equal((await get(`${lab.urls.ok}/slow?ms=150`)).status, 200)
  t.ok(Date.now() - started >= 140, '/slow waited')

  const firstChunkAt = await new Promise<number>((resolve, reject) => {
    http.get(`${lab.urls.ok}/slow-body?ms=300`, { agent: false }, (res) => {
      const headersAt = Date.now()
      res.once('data', () => resolve(Date.now() - headersAt))
      res.resume()
    }).on('error', reject)
  })
  t.ok(firstChunkAt < 250, '/slow-body sends its first chunk with the headers')
})

t.test('connection-level faults, seen on the wire', async (t) => {
  const lab = await labFor(t)
  const ok = lab.urls.ok

  const reset = await rawGet(ok, '/reset')
  t.same(reset, { received: '', ending: 'ECONNRESET' }, '/reset: RST before any byte')

  const close = await rawGet(ok, '/close')
  t.same(close, { received: '', ending: 'fin' }, '/close: FIN before any byte')

  const resetMid = await rawGet(ok, '/reset-mid-body')
  t.match(resetMid.received, /^HTTP\/1\.1 200 OK\r\n[^]*transfer-encoding: chunked[^]*partial body/i)
  t.equal(resetMid.ending, 'ECONNRESET', '/reset-mid-body: RST after part of the body')

  const closeMid = await rawGet(ok, '/close-mid-body')
  t.match(closeMid.received, /partial body/)
  t.notMatch(closeMid.received, /\r\n0\r\n\r\n$/, 'the chunked body is never terminated')
  t.equal(closeMid.ending, 'fin', '/close-mid-body: FIN, no RST')

  t.same(await rawGet(ok, '/garbage'), { received: GARBAGE_RESPONSE, ending: 'fin' })
  t.same(await rawGet(ok, '/bad-status'), { received: BAD_STATUS_RESPONSE, ending: 'fin' })
})

t.test('what an HTTP client makes of the faults', async (t) => {
  const lab = await labFor(t)
  const ok = lab.urls.ok
  t.equal(await getError(`${ok}/reset`), 'ECONNRESET')
  t.equal(await getError(`${ok}/garbage`), 'HPE_INVALID_CONSTANT')
  t.equal(await getError(`${ok}/huge-header`), 'HPE_HEADER_OVERFLOW', 'default 16 KB header limit')
  const huge = await get(`${ok}/huge-header`, { maxHeaderSize: 128 * 1024 })
  t.equal(huge.headers['x-huge']?.length, 70 * 1024)
  t.equal(await getError(lab.urls.refused), 'ECONNREFUSED')
})

t.test('TLS servers, as seen by a client trusting pki.rootCa', async (t) => {
  const lab = await labFor(t)
  const ca = lab.pki.rootCa.cert
  const verify = async (url: string, extra: tls.ConnectionOptions = {}): Promise<string | null> =>
    (await tlsHandshake({ port: portOf(url), ca, ...extra })).authorizationError

  t.equal(await verify(lab.urls.tlsGood), null)
  t.equal(await verify(lab.localhostUrls.tlsGood, { host: 'localhost', servername: 'localhost' }), null)
  t.equal(await verify(lab.urls.tlsExpired), 'CERT_HAS_EXPIRED')
  t.equal(await verify(lab.urls.tlsNotYetValid), 'CERT_NOT_YET_VALID')
  t.equal(await verify(lab.urls.tlsWrongHost), 'ERR_TLS_CERT_ALTNAME_INVALID')
  t.equal(await verify(lab.urls.tlsSelfSigned), 'DEPTH_ZERO_SELF_SIGNED_CERT')
  t.equal(await verify(lab.urls.tlsUnknownCa), 'UNABLE_TO_VERIFY_LEAF_SIGNATURE')
  t.equal(await verify(lab.urls.tlsIncompleteChain), 'UNABLE_TO_VERIFY_LEAF_SIGNATURE')

  const tlsGood = await get(`${lab.urls.tlsGood}/status/503`, { ca })
  t.equal(tlsGood.status, 503, 'tlsGood serves the ok routes')

  t.equal(await tlsHandshakeError({ port: portOf(lab.urls.tlsOnly13), ca, maxVersion: 'TLSv1.2' }),
    'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION')
  t.equal(await verify(lab.urls.tlsOnly13), null, 'tlsOnly13 is fine for a TLS 1.3 client')

  t.equal(await tlsHandshakeError({ port: portOf(lab.urls.tlsClientCert12), ca }),
    'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE', 'no client certificate: alert')
  const client = lab.pki.client
  t.equal(await verify(lab.urls.tlsClientCert12, { cert: chain(client), key: client.key }), null, 'with the client chain')
  t.equal(await verify(lab.urls.tlsClientCert12, { cert: client.cert, key: client.key }), null, 'with the client leaf alone')

  t.equal(await tlsHandshakeError({ port: portOf(lab.urls.plaintextOnTlsPort), ca }), 'ERR_SSL_WRONG_VERSION_NUMBER')
  t.equal(await tlsHandshakeError({ port: portOf(lab.urls.refused), ca }), 'ECONNREFUSED')
})

t.test('tlsHang accepts TCP but never completes a handshake', async (t) => {
  const lab = await labFor(t)
  const outcome = await new Promise<string>((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port: portOf(lab.urls.tlsHang), ca: lab.pki.rootCa.cert })
    socket.on('connect', () => { socket.setTimeout(300) })
    socket.on('secureConnect', () => { resolve('handshake completed'); socket.destroy() })
    socket.on('timeout', () => { resolve('timeout'); socket.destroy() })
    socket.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message))
  })
  t.equal(outcome, 'timeout')
  t.equal(lab.hits.tlsHang, 1)

  const reset = new net.Socket()
  reset.connect(portOf(lab.urls.tlsHang), '127.0.0.1', () => { reset.resetAndDestroy() })
  await waitFor(() => lab.hits.tlsHang === 2 && reset.destroyed, 'a client to reset its connection')
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal((await get(`${lab.urls.ok}/health`)).status, 200, 'a client resetting tlsHang does not crash the lab')
})

t.test('hits and connections count per server', async (t) => {
  const lab = await labFor(t)
  const ca = lab.pki.rootCa.cert
  await get(`${lab.urls.ok}/a`)
  await get(`${lab.urls.ok}/b`)
  await getError(`${lab.urls.ok}/reset`)
  await get(lab.urls.tlsGood, { ca })
  t.equal(await getError(lab.urls.tlsExpired, { ca }), 'CERT_HAS_EXPIRED')
  // https.get reports this one as EPROTO ("... wrong version number"), tls.connect as ERR_SSL_WRONG_VERSION_NUMBER.
  t.match(await getError(lab.urls.plaintextOnTlsPort, { ca }), /^(EPROTO|ERR_SSL_WRONG_VERSION_NUMBER)$/)
  t.equal(await getError(lab.urls.refused), 'ECONNREFUSED')

  const hanging = http.get(lab.urls.hangHeaders, { agent: false })
  hanging.on('error', () => {}) // destroyed below
  await waitFor(() => lab.hits.hangHeaders === 1, 'hangHeaders to receive the request')
  hanging.destroy()

  t.equal(lab.hits.ok, 3)
  t.equal(lab.connections.ok, 3, 'one connection per request (agent: false)')
  t.equal(lab.hits.tlsGood, 1)
  t.equal(lab.hits.tlsExpired, 0, 'the client rejected the certificate: no request')
  t.equal(lab.connections.tlsExpired, 1)
  t.equal(lab.hits.plaintextOnTlsPort, 1, 'counted per connection')
  t.equal(lab.hits.refused, 0)
  t.equal(lab.hits.tlsHang, 0)
})

t.test('faultLabRoutes describes reachable routes', async (t) => {
  const lab = await labFor(t)
  for (const [name, route] of Object.entries(faultLabRoutes)) {
    t.ok(route.server in lab.urls, `${name}: server ${route.server} exists`)
  }
  t.equal(routeUrl(lab, 'status503'), `${lab.urls.ok}/status/503`)
  t.equal(faultLabRoutes.status503.flag, 'URS')
  t.equal(faultLabRoutes.tlsExpired.flag, 'TLE')
  t.equal(faultLabRoutes.refused.flag, 'UCF')
  t.equal((await get(routeUrl(lab, 'status503'))).status, 503)
})
