import { createPrivateKey, X509Certificate } from 'node:crypto'
import t from 'tap'
import { chain, createCa, createLeaf, createPki, type CertBundle } from '@faultline/fault-lab'
import { tlsHandshake, withTlsServer } from './fixtures/loopback-clients.js'

const pki = createPki()
const x509 = (bundle: CertBundle): X509Certificate => new X509Certificate(bundle.cert)

/** Serves `bundle` (with `certPem`, default its full chain) and handshakes to it trusting pki.rootCa. */
async function verifyAgainstRoot (bundle: CertBundle, certPem = chain(bundle)): Promise<ReturnType<typeof tlsHandshake>> {
  return await withTlsServer({ key: bundle.key, cert: certPem }, async (port) =>
    await tlsHandshake({ port, ca: pki.rootCa.cert }))
}

t.test('createPki is cached per process', async (t) => {
  t.equal(createPki(), pki)
})

t.test('verification outcomes against rootCa', async (t) => {
  const cases: Array<[string, CertBundle, string | undefined, string | null]> = [
    ['good with intermediate', pki.good, undefined, null],
    ['expired', pki.expired, undefined, 'CERT_HAS_EXPIRED'],
    ['not yet valid', pki.notYetValid, undefined, 'CERT_NOT_YET_VALID'],
    ['wrong host', pki.wrongHost, undefined, 'ERR_TLS_CERT_ALTNAME_INVALID'],
    ['self-signed', pki.selfSigned, undefined, 'DEPTH_ZERO_SELF_SIGNED_CERT'],
    ['unknown CA (leaf only)', pki.unknownCa, pki.unknownCa.cert, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'],
    ['good without the intermediate', pki.good, pki.good.cert, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE']
  ]
  for (const [name, bundle, certPem, expected] of cases) {
    const outcome = await verifyAgainstRoot(bundle, certPem)
    t.same(outcome, { authorized: expected === null, authorizationError: expected }, name)
  }
})

t.test('good also verifies for the DNS name localhost', async (t) => {
  const outcome = await withTlsServer({ key: pki.good.key, cert: chain(pki.good) }, async (port) =>
    await tlsHandshake({ port, servername: 'localhost', ca: pki.rootCa.cert }))
  t.same(outcome, { authorized: true, authorizationError: null })
})

t.test('wrongHost verifies for other.example', async (t) => {
  const outcome = await withTlsServer({ key: pki.wrongHost.key, cert: chain(pki.wrongHost) }, async (port) =>
    await tlsHandshake({ port, servername: 'other.example', ca: pki.rootCa.cert }))
  t.same(outcome, { authorized: true, authorizationError: null })
})

t.test('bundle fields', async (t) => {
  t.equal(pki.good.subject, 'CN=localhost')
  t.equal(pki.wrongHost.subject, 'CN=other.example')
  t.equal(pki.client.subject, 'CN=test-client')
  t.equal(pki.good.certObj?.subjectAltName, 'DNS:localhost, IP Address:127.0.0.1')
  t.equal(pki.wrongHost.certObj?.subjectAltName, 'DNS:other.example')
  t.equal(pki.expired.notBefore.toISOString(), '2020-01-01T00:00:00.000Z')
  t.equal(pki.expired.notAfter.toISOString(), '2021-01-01T00:00:00.000Z')
  t.equal(pki.notYetValid.notBefore.toISOString(), '2099-01-01T00:00:00.000Z')
  t.equal(pki.notYetValid.notAfter.toISOString(), '2100-01-01T00:00:00.000Z')
  t.ok(pki.good.notBefore.getTime() < Date.now() && pki.good.notAfter.getTime() > Date.now(), 'good is valid now')

  t.ok(pki.rootCa.certObj?.ca, 'root is a CA')
  t.ok(pki.intermediateCa.certObj?.ca, 'intermediate is a CA')
  t.notOk(pki.good.certObj?.ca, 'leaf is not a CA')
  t.ok(x509(pki.intermediateCa).checkIssued(x509(pki.rootCa)), 'root issued the intermediate')
  t.ok(x509(pki.good).checkIssued(x509(pki.intermediateCa)), 'intermediate issued good')
  t.ok(x509(pki.unknownCa).checkIssued(x509(pki.otherRoot)), 'otherRoot issued unknownCa')
  t.notOk(x509(pki.unknownCa).checkIssued(x509(pki.rootCa)), 'rootCa did not issue unknownCa')
  // checkIssued() would say no: a leaf lacks keyCertSign. Same name, own signature is what "self-signed" means.
  t.equal(x509(pki.selfSigned).issuer, x509(pki.selfSigned).subject, 'selfSigned: issuer is the subject')
  t.ok(x509(pki.selfSigned).verify(x509(pki.selfSigned).publicKey), 'selfSigned: signed with its own key')

  t.same(pki.good.certObj?.keyUsage, ['1.3.6.1.5.5.7.3.1'], 'server leaf: serverAuth only')
  t.same(pki.client.certObj?.keyUsage, ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2'], 'client leaf: serverAuth + clientAuth')
})

t.test('chain() sends intermediates, never the root', async (t) => {
  const pemCount = (pem: string): number => pem.split('-----BEGIN CERTIFICATE-----').length - 1
  t.equal(chain(pki.good), pki.good.cert + pki.intermediateCa.cert)
  t.equal(pemCount(chain(pki.unknownCa)), 1, 'leaf signed directly by a root')
  t.equal(pemCount(chain(pki.selfSigned)), 1)
  t.equal(chain(pki.rootCa), pki.rootCa.cert)
})

t.test('createCa / createLeaf options', async (t) => {
  const root = createCa({ commonName: 'Test Root' })
  const notAfter = new Date(Date.now() + 24 * 60 * 60 * 1000)
  const leaf = createLeaf({ issuer: root, commonName: 'svc.test', altNames: [{ dns: 'svc.test' }, { ip: '127.0.0.1' }], notAfter })
  const again = createLeaf({ issuer: root, commonName: 'svc.test' })
  t.equal(root.subject, 'CN=Test Root')
  t.equal(leaf.certObj?.issuer, 'CN=Test Root')
  t.equal(leaf.certObj?.subjectAltName, 'DNS:svc.test, IP Address:127.0.0.1')
  t.equal(leaf.notAfter.getTime(), Math.floor(notAfter.getTime() / 1000) * 1000, 'notAfter kept (to the second)')
  t.equal(leaf.notAfter.getTime(), new Date(x509(leaf).validTo).getTime(), 'bundle date is the certificate date')
  t.equal(again.certObj?.subjectAltName, undefined, 'no SAN when no altNames')
  t.not(leaf.certObj?.serialNumber, again.certObj?.serialNumber, 'serial numbers are random')
  t.match(leaf.key, /^-----BEGIN PRIVATE KEY-----/)
  t.ok(x509(leaf).checkPrivateKey(createPrivateKey(leaf.key)), 'key matches cert')
})
