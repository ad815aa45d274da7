// The ready-made set of certificates the fault lab serves: one good chain and one
// certificate for every way a chain can fail verification.
import { createCa, createLeaf, type AltName, type CertBundle } from './certs.js'

export interface Pki {
  /** Root CA clients should trust (`ca: pki.rootCa.cert`). */
  rootCa: CertBundle
  /** Signed by rootCa; signs every leaf below except selfSigned and unknownCa. */
  intermediateCa: CertBundle
  /** CN=localhost, SAN DNS:localhost + IP:127.0.0.1, valid now. Serve with `chain(good)`. */
  good: CertBundle
  /** Same names as good, valid 2020-01-01 .. 2021-01-01. */
  expired: CertBundle
  /** Same names as good, valid 2099-01-01 .. 2100-01-01. */
  notYetValid: CertBundle
  /** CN=other.example, SAN DNS:other.example only. */
  wrongHost: CertBundle
  /** Self-signed localhost / 127.0.0.1 leaf. */
  selfSigned: CertBundle
  /** localhost / 127.0.0.1 leaf signed by otherRoot, which clients do not trust. */
  unknownCa: CertBundle
  /** CN=test-client, clientAuth leaf signed by the intermediate. */
  client: CertBundle
  /** A root unrelated to rootCa. */
  otherRoot: CertBundle
}

const LOOPBACK_NAMES: AltName[] = [{ dns: 'localhost' }, { ip: '127.0.0.1' }]

let cached: Pki | undefined

/** Builds the set once per process (RSA key generation is the slow part) and reuses it. */
export function createPki (): Pki {
  cached ??= buildPki()
  return cached
}

function buildPki (): Pki {
  const rootCa = createCa({ commonName: 'Faultline Fault-Lab Root CA' })
  const intermediateCa = createCa({ commonName: 'Faultline Fault-Lab Intermediate CA', issuer: rootCa })
  const otherRoot = createCa({ commonName: 'Faultline Fault-Lab Unrelated Root CA' })
  const localhostLeaf = (issuer: CertBundle | 'self', validity: { notBefore?: Date, notAfter?: Date } = {}): CertBundle =>
    createLeaf({ issuer, commonName: 'localhost', altNames: LOOPBACK_NAMES, ...validity })

  return {
    rootCa,
    intermediateCa,
    good: localhostLeaf(intermediateCa),
    expired: localhostLeaf(intermediateCa, {
      notBefore: new Date('2020-01-01T00:00:00Z'),
      notAfter: new Date('2021-01-01T00:00:00Z')
    }),
    notYetValid: localhostLeaf(intermediateCa, {
      notBefore: new Date('2099-01-01T00:00:00Z'),
      notAfter: new Date('2100-01-01T00:00:00Z')
    }),
    wrongHost: createLeaf({ issuer: intermediateCa, commonName: 'other.example', altNames: [{ dns: 'other.example' }] }),
    selfSigned: localhostLeaf('self'),
    unknownCa: localhostLeaf(otherRoot),
    client: createLeaf({ issuer: intermediateCa, commonName: 'test-client', clientAuth: true }),
    otherRoot
  }
}
