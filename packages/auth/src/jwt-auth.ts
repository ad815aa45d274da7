/**
 * JWT: a Bearer token verified by @fastify/jwt (fast-jwt underneath) against one key and an
 * explicit algorithm allow-list, then its claims checked and mapped to headers for the upstream.
 *
 * The header is read here, not by @fastify/jwt, so that each malformed-header case is IHD (it
 * answers 401 for a bad scheme and 400 for others). Verification calls the namespaced
 * `fastify.jwt.<ns>.verify(token)`, which throws fast-jwt's own TokenError with its `code`
 * (`request.jwtVerify` wraps those into FST_JWT_* errors that merge aud, iss, signature and missing
 * claim into one code, and lets FAST_JWT_INACTIVE and FAST_JWT_INVALID_ALGORITHM through as 500s).
 * Every flag below is chosen from that code; no message text is read.
 *
 * The token never reaches a log: errors carry the catalogue's message and fast-jwt's error (whose
 * messages and properties never include the token) as `cause`.
 */
import { createPublicKey, type KeyObject } from 'node:crypto'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fastifyJwt, { type FastifyJWTOptions, type JWT } from '@fastify/jwt'
import { FaultlineError } from '@faultline/core'
import type { Authenticator, JwtAuthOptions } from './options.js'
import { removeRequestHeader } from './request-headers.js'

const SOURCE = 'JwtAuth'
const NAMESPACE = 'faultline'

const HS_ALGORITHMS = new Set(['HS256', 'HS384', 'HS512'])
const KNOWN_ALGORITHMS = ['HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA']
/** Key type (and curve) each asymmetric algorithm needs, from node:crypto's KeyObject. */
const KEY_FOR_ALGORITHM: Record<string, { types: readonly string[], curve?: string, describe: string }> = {
  RS256: { types: ['rsa'], describe: 'an RSA key' },
  RS384: { types: ['rsa'], describe: 'an RSA key' },
  RS512: { types: ['rsa'], describe: 'an RSA key' },
  PS256: { types: ['rsa'], describe: 'an RSA key' },
  PS384: { types: ['rsa'], describe: 'an RSA key' },
  PS512: { types: ['rsa'], describe: 'an RSA key' },
  ES256: { types: ['ec'], curve: 'prime256v1', describe: 'an EC P-256 key' },
  ES384: { types: ['ec'], curve: 'secp384r1', describe: 'an EC P-384 key' },
  ES512: { types: ['ec'], curve: 'secp521r1', describe: 'an EC P-521 key' },
  EdDSA: { types: ['ed25519', 'ed448'], describe: 'an Ed25519 or Ed448 key' }
}

/** `Bearer`, one or more spaces (RFC 6750 `1*SP`), then exactly three base64url segments (the last empty for `alg: none`). */
const BEARER_JWT = /^bearer +([\w-]+\.[\w-]+\.[\w-]*)$/i
const HEADER_NAME = /^[a-z0-9-]+$/
/** What Node and undici accept in a header value; anything else would fail the proxied request. */
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/
/** Headers a claim may not set: they carry credentials, or decide routing and framing. */
const RESERVED_HEADERS = new Set([
  'authorization', 'proxy-authorization', 'cookie', 'host', 'content-length', 'transfer-encoding',
  'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'expect'
])

/**
 * fast-jwt's TokenError codes (fast-jwt/src/error.js) to flags. Signature and algorithm are
 * checked before any claim (fast-jwt's verifyToken), so TKE, TKN and TCV come from a token our key
 * signed. A code not listed here (FAST_JWT_INVALID_KEY, FAST_JWT_MISSING_KEY, ...) means our own
 * configuration is broken: GIE.
 */
const FLAG_BY_CODE: Readonly<Record<string, 'TKE' | 'TKN' | 'TKI' | 'TCV'>> = {
  FAST_JWT_EXPIRED: 'TKE',
  FAST_JWT_INACTIVE: 'TKN',
  FAST_JWT_INVALID_CLAIM_VALUE: 'TCV', // aud/iss not allowed (also an array where a string is due)
  FAST_JWT_INVALID_CLAIM_TYPE: 'TCV', // aud/iss not a string
  FAST_JWT_MISSING_REQUIRED_CLAIM: 'TCV',
  FAST_JWT_MALFORMED: 'TKI', // header or payload not base64url JSON
  FAST_JWT_INVALID_PAYLOAD: 'TKI', // payload JSON but not an object
  FAST_JWT_INVALID_TYPE: 'TKI',
  FAST_JWT_INVALID_ALGORITHM: 'TKI', // not in the allow-list: `none` with an empty signature lands in MISSING_SIGNATURE first
  FAST_JWT_INVALID_SIGNATURE: 'TKI',
  FAST_JWT_MISSING_SIGNATURE: 'TKI', // `alg: none` (unsigned)
  FAST_JWT_INVALID_CRIT_HEADER: 'TKI',
  FAST_JWT_VERIFY_ERROR: 'TKI' // node:crypto refused the signature bytes (e.g. an ES signature of the wrong length)
}

type Claims = Record<string, unknown>
/** fast-jwt's algorithm names, as @fastify/jwt's options type them (fast-jwt is not ours to import). */
type JwsAlgorithm = NonNullable<NonNullable<FastifyJWTOptions['verify']>['algorithms']>[number]

interface JwtSettings {
  algorithms: JwsAlgorithm[]
  key: string
  issuer: string[] | undefined
  audience: string[] | undefined
  requiredClaims: string[] | undefined
  requiredScopes: string[]
  /** ms, as fast-jwt counts. */
  clockTolerance: number
  /** [claim, header name] pairs. */
  claimHeaders: Array<[string, string]>
  forwardToken: boolean
}

function fail (option: string, expected: string, value: unknown): never {
  throw new TypeError(`@faultline/auth: option "${option}" must be ${expected}, got ${JSON.stringify(value)}`)
}

function checkStrings (option: string, value: unknown, expected: string): string[] {
  if (!Array.isArray(value)) fail(option, expected, value)
  value.forEach((item, i) => {
    if (typeof item !== 'string' || item.length === 0) fail(`${option}[${i}]`, 'a non-empty string', item)
  })
  return value.slice()
}

function checkStringOrStrings (option: string, value: unknown): string[] | undefined {
  if (value === undefined) return undefined
  if (typeof value === 'string' && value.length > 0) return [value]
  const list = checkStrings(option, value, 'a non-empty string or a non-empty array of strings')
  if (list.length === 0) fail(option, 'a non-empty string or a non-empty array of strings', value)
  return list
}

function checkAlgorithms (value: unknown): JwsAlgorithm[] {
  const expected = `a non-empty array of JWS algorithms (${KNOWN_ALGORITHMS.join(', ')})`
  if (!Array.isArray(value) || value.length === 0) fail('algorithms', expected, value)
  value.forEach((alg, i) => {
    if (typeof alg === 'string' && alg.toLowerCase() === 'none') {
      fail(`algorithms[${i}]`, 'a signing algorithm: "none" would accept unsigned tokens', alg)
    }
    if (typeof alg !== 'string' || !KNOWN_ALGORITHMS.includes(alg)) fail(`algorithms[${i}]`, `one of ${KNOWN_ALGORITHMS.join(', ')}`, alg)
  })
  const algorithms = [...new Set(value as JwsAlgorithm[])]
  const hs = algorithms.filter((alg) => HS_ALGORITHMS.has(alg))
  if (hs.length > 0 && hs.length < algorithms.length) {
    // One config trusting both a shared secret and a public key is the setup of the classic
    // key-confusion attack (a token "HS256-signed" with the public key).
    fail('algorithms', 'either HS* algorithms (with "secret") or RS*/PS*/ES*/EdDSA algorithms (with "publicKey"), not both', value)
  }
  return algorithms
}

/** The secret is never echoed: messages give its type or length only. */
function checkSecret (options: JwtAuthOptions, algorithms: string[]): string {
  if (options.publicKey !== undefined) {
    throw new TypeError(`@faultline/auth: option "publicKey" is not used with ${algorithms.join(', ')}: give "secret" only`)
  }
  const secret = options.secret
  if (typeof secret !== 'string' || secret.length === 0) {
    throw new TypeError(`@faultline/auth: option "secret" must be a non-empty string for ${algorithms.join(', ')}, got ${secret === undefined ? 'nothing' : typeof secret}`)
  }
  // With HS-only algorithms fast-jwt skips key detection and would use a PEM or a JWK as an HMAC
  // secret: whoever holds that (public) key could then sign tokens.
  if (secret.includes('-----BEGIN ') || /^\s*[[{]/.test(secret)) {
    throw new TypeError('@faultline/auth: option "secret" must be a raw shared secret, got what looks like a PEM key or a JWK (use "publicKey" with RS*/PS*/ES*/EdDSA)')
  }
  // RFC 7518 section 3.2: the key must be at least as long as the hash output.
  const bytes = Buffer.byteLength(secret)
  const longest = Math.max(...algorithms.map((alg) => Number(alg.slice(2))))
  if (bytes * 8 < longest) {
    throw new TypeError(`@faultline/auth: option "secret" must be at least ${longest / 8} bytes for HS${longest} (RFC 7518 section 3.2), got ${bytes} bytes`)
  }
  return secret
}

function describeKey (key: KeyObject): string {
  const curve = key.asymmetricKeyDetails?.namedCurve
  return `${key.asymmetricKeyType ?? 'unknown'}${curve === undefined ? '' : ` (${curve})`} key`
}

function checkPublicKey (options: JwtAuthOptions, algorithms: string[]): string {
  if (options.secret !== undefined) {
    // Never echo the secret.
    throw new TypeError(`@faultline/auth: option "secret" is not used with ${algorithms.join(', ')}: give "publicKey" only`)
  }
  const pem = options.publicKey
  if (typeof pem !== 'string' || !pem.includes('-----BEGIN ')) {
    throw new TypeError(`@faultline/auth: option "publicKey" must be a PEM public key for ${algorithms.join(', ')}, got ${pem === undefined ? 'nothing' : typeof pem === 'string' ? 'a string that is not PEM' : typeof pem}`)
  }
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) {
    // Do not echo it: it is a secret.
    throw new TypeError('@faultline/auth: option "publicKey" must be a public key, got a private key (keep it off the gateway)')
  }
  let key: KeyObject
  try {
    key = createPublicKey(pem)
  } catch (err) {
    throw new TypeError('@faultline/auth: option "publicKey" must be a PEM public key (SPKI, PKCS#1 or an X.509 certificate), got a PEM that does not parse', { cause: err })
  }
  for (const alg of algorithms) {
    const need = KEY_FOR_ALGORITHM[alg]
    const type = key.asymmetricKeyType ?? ''
    if (!need.types.includes(type) || (need.curve !== undefined && key.asymmetricKeyDetails?.namedCurve !== need.curve)) {
      throw new TypeError(`@faultline/auth: option "publicKey" must be ${need.describe} for ${alg}, got an ${describeKey(key)}`)
    }
  }
  return pem
}

function checkClaimHeaders (value: unknown): Array<[string, string]> {
  if (value === undefined) return []
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail('claimHeaders', 'an object mapping claims to header names', value)
  const used = new Set<string>()
  return Object.entries(value).map(([claim, header]): [string, string] => {
    const name = typeof header === 'string' ? header.toLowerCase() : ''
    if (!HEADER_NAME.test(name)) fail(`claimHeaders.${claim}`, 'a header name', header)
    if (RESERVED_HEADERS.has(name)) fail(`claimHeaders.${claim}`, 'a header that carries no credential and does not frame or route the request', header)
    if (used.has(name)) fail(`claimHeaders.${claim}`, 'a header no other claim is mapped to', header)
    used.add(name)
    return [claim, name]
  })
}

function compileOptions (options: JwtAuthOptions): JwtSettings {
  const algorithms = checkAlgorithms(options.algorithms)
  const key = HS_ALGORITHMS.has(algorithms[0]) ? checkSecret(options, algorithms) : checkPublicKey(options, algorithms)
  const clockTolerance = options.clockTolerance ?? 0
  if (typeof clockTolerance !== 'number' || !Number.isFinite(clockTolerance) || clockTolerance < 0) {
    fail('clockTolerance', 'a number of seconds >= 0', options.clockTolerance)
  }
  const requiredScopes = options.requiredScopes === undefined ? [] : checkStrings('requiredScopes', options.requiredScopes, 'an array of scopes')
  requiredScopes.forEach((scope, i) => {
    if (/\s/.test(scope)) fail(`requiredScopes[${i}]`, 'a scope without spaces', scope)
  })
  if (options.forwardToken !== undefined && typeof options.forwardToken !== 'boolean') fail('forwardToken', 'a boolean', options.forwardToken)
  return {
    algorithms,
    key,
    issuer: checkStringOrStrings('issuer', options.issuer),
    audience: checkStringOrStrings('audience', options.audience),
    requiredClaims: options.requiredClaims === undefined ? undefined : checkStrings('requiredClaims', options.requiredClaims, 'an array of claim names'),
    requiredScopes,
    clockTolerance: clockTolerance * 1000,
    claimHeaders: checkClaimHeaders(options.claimHeaders),
    forwardToken: options.forwardToken === true
  }
}

/**
 * Registers @fastify/jwt in a context of its own under `fastify` (the API's scope): its
 * decorators stay there, so several APIs (or the application's own @fastify/jwt) never clash.
 * The context gets its own `jwt` object first, so that @fastify/jwt's namespace mode adds to it
 * rather than to an ancestor's `fastify.jwt`. Verify-only: no signer is built (`secret.public`).
 */
async function registerVerifier (fastify: FastifyInstance, settings: JwtSettings): Promise<JWT> {
  let verifier: JWT | undefined
  await fastify.register(async function faultlineJwtVerifier (scope) {
    scope.decorate('jwt', Object.create(null))
    await scope.register(fastifyJwt, {
      namespace: NAMESPACE,
      secret: { public: settings.key },
      verify: {
        algorithms: settings.algorithms,
        allowedIss: settings.issuer,
        allowedAud: settings.audience,
        requiredClaims: settings.requiredClaims,
        clockTolerance: settings.clockTolerance
      }
    })
    verifier = (scope.jwt as unknown as Record<string, JWT>)[NAMESPACE]
  })
  if (verifier === undefined) throw new Error('@faultline/auth: @fastify/jwt did not register its verifier')
  return verifier
}

/** `scope` (space-separated string; an array is tolerated) and `scp` (array, or a string as Entra ID sends it). */
function hasScopes (claims: Claims, required: string[]): boolean {
  const granted: string[] = []
  for (const claim of [claims.scope, claims.scp]) {
    if (typeof claim === 'string') granted.push(...claim.split(' '))
    else if (Array.isArray(claim)) for (const s of claim) if (typeof s === 'string') granted.push(s)
  }
  return required.every((scope) => granted.includes(scope))
}

/** A claim as a header value: strings as they are, numbers and booleans as text, objects as JSON. */
function toHeaderValue (value: unknown): string | undefined {
  let text: string
  if (typeof value === 'string') text = value
  else if (typeof value === 'number' || typeof value === 'boolean') text = String(value)
  else if (typeof value === 'object' && value !== null) text = JSON.stringify(value)
  else return undefined
  // A value the transport would refuse (control characters, code points above U+00FF) is
  // dropped rather than failing the whole request; the spoofable incoming header is gone anyway.
  return HEADER_VALUE.test(text) ? text : undefined
}

/** exp or nbf present but not a NumericDate: fast-jwt reports it as a claim type/value error, but the token is malformed. */
function hasMalformedTimeClaim (claims: Claims): boolean {
  return ('exp' in claims && typeof claims.exp !== 'number') || ('nbf' in claims && typeof claims.nbf !== 'number')
}

export async function createJwtAuthenticator (fastify: FastifyInstance, options: JwtAuthOptions): Promise<Authenticator> {
  const settings = compileOptions(options)
  const jwt = await registerVerifier(fastify, settings)
  const { requiredScopes, claimHeaders, forwardToken } = settings

  /** A verification failure as a flag. The signature was good for TKE/TKN/TCV, so `sub` names the consumer. */
  function verificationFailure (err: unknown, token: string, reply: FastifyReply): FaultlineError {
    const code = (err as { code?: unknown } | null)?.code
    let flag = typeof code === 'string' ? FLAG_BY_CODE[code] : undefined
    if (flag === undefined) return new FaultlineError('GIE', { source: SOURCE, cause: err })
    if (flag !== 'TKI') {
      // Decoding cannot fail here: fast-jwt decoded the token before checking any claim.
      const claims = jwt.decode<Claims>(token)
      if (claims !== null) {
        if (flag === 'TCV' && hasMalformedTimeClaim(claims)) {
          flag = 'TKI'
        } else if (typeof claims.sub === 'string' && claims.sub !== '' && reply.faultline !== null) {
          reply.faultline.consumer = claims.sub
        }
      }
    }
    return new FaultlineError(flag, { source: SOURCE, cause: err })
  }

  function authenticate (request: FastifyRequest, reply: FastifyReply): void {
    const authorization = request.headers.authorization
    // The token goes no further than the gateway unless asked for.
    if (!forwardToken) removeRequestHeader(request, 'authorization')
    // Node trims the value: `Authorization:` with only spaces arrives as '' (no credential).
    if (authorization === undefined || authorization === '') throw new FaultlineError('AMF', { source: SOURCE })
    const match = typeof authorization === 'string' ? BEARER_JWT.exec(authorization) : null
    if (match === null) throw new FaultlineError('IHD', { source: SOURCE })
    const token = match[1]

    let claims: Claims
    try {
      claims = jwt.verify<Claims>(token)
    } catch (err) {
      throw verificationFailure(err, token, reply)
    }

    const record = reply.faultline
    if (record !== null && typeof claims.sub === 'string' && claims.sub !== '') record.consumer = claims.sub
    if (requiredScopes.length > 0 && !hasScopes(claims, requiredScopes)) throw new FaultlineError('ACD', { source: SOURCE })

    for (let i = 0; i < claimHeaders.length; i++) {
      const [claim, header] = claimHeaders[i]
      // Whatever the client sent under this name is replaced, or removed when the claim is absent.
      const value = toHeaderValue(claims[claim])
      if (value !== undefined) request.headers[header] = value
      else removeRequestHeader(request, header)
    }
  }

  return { source: SOURCE, authenticate }
}
