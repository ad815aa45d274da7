import { X509Certificate } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { chain, createLeaf, createPki } from '@faultline/fault-lab'
import { createMtlsAuthenticator, normalizeFingerprint } from '@faultline/auth'
import { startGateway, type TestGateway } from '../../../test/helpers/gateway.js'
import { httpRequest, type HttpCall } from '../../../test/helpers/http-client.js'

const pki = createPki()
const stranger = createLeaf({ issuer: pki.intermediateCa, commonName: 'stranger', clientAuth: true })
const selfMade = createLeaf({ issuer: 'self', commonName: 'pinned-self-signed', clientAuth: true })

let hits = 0
let gw: TestGateway

t.before(async () => {
  const upstream = http.createServer((_req, res) => { hits++; res.end('ok') })
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { upstream.close() })
  gw = await startGateway([{
    name: 'Ledger',
    prefix: '/ledger',
    upstream: { targets: [`http://127.0.0.1:${(upstream.address() as AddressInfo).port}`] },
    auth: {
      type: 'mtls',
      allowedFingerprints: [new X509Certificate(pki.client.cert).fingerprint256, normalizeFingerprint(new X509Certificate(selfMade.cert).fingerprint256).toUpperCase()]
    }
  }], {}, {
    https: { key: pki.good.key, cert: chain(pki.good), ca: [pki.rootCa.cert], requestCert: true, rejectUnauthorized: false }
  })
  t.teardown(() => gw.app.close())
})

async function call (client: HttpCall = {}): Promise<{ status: number, line: Record<string, unknown> }> {
  const before = gw.log.lines.length
  const res = await httpRequest(gw.url, { path: '/ledger/entries', ca: pki.rootCa.cert, ...client })
  const lines = await gw.log.waitFor(before + 1)
  return { status: res.status, line: lines[before] }
}

function denied (t: Test, res: { status: number, line: Record<string, unknown> }, flag: string, status: number, details: string, hitsBefore: number): void {
  t.equal(res.status, status)
  t.match(res.line, { status, response_flag: flag, response_code_details: details, error_source: 'MtlsAuth', error_category: 'auth' })
  t.equal(hits, hitsBefore, 'the upstream received nothing')
}

t.test('a listed client certificate passes; its subject is the consumer', async (t) => {
  const res = await call({ cert: chain(pki.client), key: pki.client.key })
  t.equal(res.status, 200)
  t.match(res.line, { consumer: 'CN=test-client', response_source: 'upstream' })
})

t.test('no client certificate is CRQ 401', async (t) => {
  denied(t, await call(), 'CRQ', 401, 'client_certificate_required', hits)
})

t.test('a certificate from the trusted CA but not listed is CMM 403, with its subject', async (t) => {
  const res = await call({ cert: chain(stranger), key: stranger.key })
  denied(t, res, 'CMM', 403, 'client_certificate_mismatch', hits)
  t.equal(res.line.consumer, 'CN=stranger')
})

t.test('a pinned self-signed certificate passes: the fingerprint decides, in any case and format', async (t) => {
  const res = await call({ cert: selfMade.cert, key: selfMade.key })
  t.equal(res.status, 200)
  t.equal(res.line.consumer, 'CN=pinned-self-signed')
})

t.test('a plain HTTP connection to an mTLS API is CRQ', async (t) => {
  const auth = createMtlsAuthenticator({ type: 'mtls', allowedFingerprints: ['aa'.repeat(32)] })
  const reply = { faultline: { consumer: undefined } }
  let flag: string | undefined
  try {
    await auth.authenticate({ raw: { socket: {} } } as never, reply as never)
  } catch (err) {
    flag = (err as { flag?: string }).flag
  }
  t.equal(flag, 'CRQ')
})

t.test('fingerprints are validated at registration', async (t) => {
  t.throws(() => createMtlsAuthenticator({ type: 'mtls', allowedFingerprints: [] }), /allowedFingerprints" must be a non-empty array/)
  t.throws(() => createMtlsAuthenticator({ type: 'mtls', allowedFingerprints: ['abc'] }), /allowedFingerprints\[0\]" must be a sha256 fingerprint/)
})
