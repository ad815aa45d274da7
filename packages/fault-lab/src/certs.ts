// Certificate factory: root CAs, intermediate CAs and leaf certificates, built in
// pure JS (node-forge for the X.509 structure, node:crypto for the RSA keys, which
// is much faster than forge's own key generation).
import { generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto'
import forge from 'node-forge'

export interface CertBundle {
  /** The certificate, PEM. */
  cert: string
  /** Its private key, PKCS#8 PEM. */
  key: string
  /** The same certificate parsed by node:crypto, for inspection. */
  certObj?: X509Certificate
  /** Subject as `CN=...`. */
  subject: string
  notBefore: Date
  notAfter: Date
  /** True for CA certificates (basicConstraints cA). */
  isCa: boolean
  /** The bundle that signed this one; undefined when self-signed. Used by `chain()`. */
  issuer?: CertBundle
}

export type AltName = { dns: string } | { ip: string }

export interface CreateCaOptions {
  commonName?: string
  notBefore?: Date
  notAfter?: Date
  /** Signing CA. Without it the CA is a self-signed root; with it, an intermediate. */
  issuer?: CertBundle
}

export interface CreateLeafOptions {
  /** Signing CA, or 'self' for a self-signed leaf. */
  issuer: CertBundle | 'self'
  commonName: string
  altNames?: AltName[]
  notBefore?: Date
  notAfter?: Date
  /** Add the clientAuth extended key usage (serverAuth is always present). */
  clientAuth?: boolean
}

const HOUR_MS = 60 * 60 * 1000
const YEAR_MS = 365 * 24 * HOUR_MS

export function createCa (opts: CreateCaOptions = {}): CertBundle {
  const now = Date.now()
  const isRoot = opts.issuer === undefined
  return buildCertificate({
    commonName: opts.commonName ?? (isRoot ? 'Faultline Fault-Lab Root CA' : 'Faultline Fault-Lab Intermediate CA'),
    notBefore: opts.notBefore ?? new Date(now - HOUR_MS),
    notAfter: opts.notAfter ?? new Date(now + 10 * YEAR_MS),
    issuer: opts.issuer ?? 'self',
    isCa: true,
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true }
    ]
  })
}

export function createLeaf (opts: CreateLeafOptions): CertBundle {
  const now = Date.now()
  const extensions: object[] = [
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true, clientAuth: opts.clientAuth === true }
  ]
  if (opts.altNames !== undefined && opts.altNames.length > 0) {
    extensions.push({ name: 'subjectAltName', altNames: opts.altNames.map(toForgeAltName) })
  }
  return buildCertificate({
    commonName: opts.commonName,
    notBefore: opts.notBefore ?? new Date(now - HOUR_MS),
    notAfter: opts.notAfter ?? new Date(now + YEAR_MS),
    issuer: opts.issuer,
    isCa: false,
    extensions
  })
}

/**
 * The PEM a server should send: the certificate followed by every intermediate CA
 * above it (the root is left out, as clients are expected to hold it already).
 */
export function chain (bundle: CertBundle): string {
  const pems = [bundle.cert]
  for (let ca = bundle.issuer; ca?.issuer !== undefined; ca = ca.issuer) {
    pems.push(ca.cert)
  }
  return pems.join('')
}

interface BuildOptions {
  commonName: string
  notBefore: Date
  notAfter: Date
  issuer: CertBundle | 'self'
  isCa: boolean
  extensions: object[]
}

function buildCertificate (opts: BuildOptions): CertBundle {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' }
  })

  const cert = forge.pki.createCertificate()
  cert.publicKey = forge.pki.publicKeyFromPem(publicKey)
  cert.serialNumber = randomSerialNumber()
  cert.validity.notBefore = wholeSeconds(opts.notBefore)
  cert.validity.notAfter = wholeSeconds(opts.notAfter)
  const subject = [{ name: 'commonName', value: opts.commonName }]
  cert.setSubject(subject)

  let signingKey: forge.pki.PrivateKey
  let authorityKeyId: string | true
  if (opts.issuer === 'self') {
    cert.setIssuer(subject)
    signingKey = forge.pki.privateKeyFromPem(privateKey)
    authorityKeyId = true // forge reads it from the certificate being built: right for self-signed
  } else {
    const issuerCert = forge.pki.certificateFromPem(opts.issuer.cert)
    cert.setIssuer(issuerCert.subject.attributes)
    signingKey = forge.pki.privateKeyFromPem(opts.issuer.key)
    authorityKeyId = issuerCert.generateSubjectKeyIdentifier().getBytes()
  }

  cert.setExtensions([
    ...opts.extensions,
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: authorityKeyId }
  ])
  cert.sign(signingKey, forge.md.sha256.create())

  const pem = forge.pki.certificateToPem(cert)
  return {
    cert: pem,
    key: privateKey,
    certObj: new X509Certificate(pem),
    subject: `CN=${opts.commonName}`,
    notBefore: cert.validity.notBefore,
    notAfter: cert.validity.notAfter,
    isCa: opts.isCa,
    issuer: opts.issuer === 'self' ? undefined : opts.issuer
  }
}

/** 16 random bytes as hex, positive and without a leading zero byte, so DER keeps all 16. */
function randomSerialNumber (): string {
  const bytes = randomBytes(16)
  bytes[0] = (bytes[0] & 0x7f) | 0x10
  return bytes.toString('hex')
}

/** X.509 times have a one-second resolution: truncate so the bundle's dates equal the certificate's. */
function wholeSeconds (date: Date): Date {
  return new Date(Math.floor(date.getTime() / 1000) * 1000)
}

function toForgeAltName (name: AltName): { type: number, value?: string, ip?: string } {
  return 'dns' in name ? { type: 2, value: name.dns } : { type: 7, ip: name.ip }
}
