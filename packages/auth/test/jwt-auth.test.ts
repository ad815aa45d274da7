import { createHmac, generateKeyPairSync, sign, type KeyObject } from 'node:crypto'
import t, { type Test } from 'tap'
import Fastify from 'fastify'
import fastifyJwt from '@fastify/jwt'
import core from '@faultline/core'
import auth, { createJwtAuthenticator, type JwtAuthOptions } from '@faultline/auth'
import { startGateway, type TestGateway } from '../../../test/helpers/gateway.js'
import { httpRequest, type HttpAnswer } from '../../../test/helpers/http-client.js'
import { recordingUpstream as upstream, type RecordingUpstream as Upstream } from '../../../test/helpers/upstream.js'

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
const otherRsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' })
const RSA_PUBLIC_PEM = rsa.publicKey.export({ type: 'spki', format: 'pem' }).toString()
const EC_PUBLIC_PEM = ec.publicKey.export({ type: 'spki', format: 'pem' }).toString()
const SECRET = 'hs-secret-for-tests-0123456789-abcdef'

const now = (): number => Math.floor(Date.now() / 1000)

type Signing =
  | { alg: 'RS256' | 'ES256', key: KeyObject }
  | { alg: 'HS256' | 'HS512', key: string }
  | { alg: 'none' }

/** A compact JWS signed with node:crypto, so the test does not trust the code under test to sign. */
function jwt (signing: Signing, claims: Record<string, unknown>, header: Record<string, unknown> = {}): string {
  const head = Buffer.from(JSON.stringify({ alg: signing.alg, typ: 'JWT', ...header })).toString('base64url')
  const body = Buffer.from(JSON.stringify(claims)).toString('base64url')
  const input = `${head}.${body}`
  let signature = ''
  if (signing.alg === 'HS256' || signing.alg === 'HS512') {
    signature = createHmac(signing.alg === 'HS256' ? 'sha256' : 'sha512', signing.key).update(input).digest('base64url')
  } else if (signing.alg === 'RS256') {
    signature = sign('sha256', Buffer.from(input), signing.key).toString('base64url')
  } else if (signing.alg === 'ES256') {
    signature = sign('sha256', Buffer.from(input), { key: signing.key, dsaEncoding: 'ieee-p1363' }).toString('base64url')
  }
  return `${input}.${signature}`
}

const rs256 = (claims: Record<string, unknown>): string => jwt({ alg: 'RS256', key: rsa.privateKey }, claims)
const valid = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  sub: 'user-42', iss: 'https://idp.example', aud: 'payments', exp: now() + 300, ...extra
})

const RS_AUTH: JwtAuthOptions = {
  type: 'jwt',
  algorithms: ['RS256'],
  publicKey: RSA_PUBLIC_PEM,
  issuer: 'https://idp.example',
  audience: ['payments', 'billing'],
  requiredClaims: ['sub']
}

async function gateway (t: Test, up: Upstream, auth: JwtAuthOptions = RS_AUTH): Promise<TestGateway> {
  const gw = await startGateway([{ name: 'Payments', prefix: '/pay', upstream: { targets: [up.url] }, auth }])
  t.teardown(() => gw.app.close())
  return gw
}

type Answer = HttpAnswer & { line: Record<string, unknown> }

async function call (gw: TestGateway, headers: Record<string, string> = {}, path = '/pay/charges'): Promise<Answer> {
  const before = gw.log.lines.length
  const res = await httpRequest(gw.url, { path, headers })
  const lines = await gw.log.waitFor(before + 1)
  return { ...res, line: lines[before] }
}

const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` })

/** Status, body, every field of the line, nothing upstream, and no token text anywhere in the logs. */
function assertDenied (t: Test, gw: TestGateway, res: Answer, up: Upstream, expected: {
  flag: string, status: number, details: string, message: string, category?: string, consumer?: string, token?: string
}): void {
  t.equal(res.status, expected.status)
  t.equal(JSON.parse(res.body).message, expected.message)
  t.match(res.line, {
    status: expected.status,
    response_flag: expected.flag,
    response_code_details: expected.details,
    error_source: 'JwtAuth',
    error_category: expected.category ?? 'auth',
    api_name: 'Payments',
    response_source: 'gateway'
  })
  t.equal(res.line.consumer, expected.consumer, expected.consumer === undefined ? 'no consumer' : 'consumer is the token subject')
  t.equal(up.hits, 0, 'a denied request never reaches the upstream')
  if (expected.token !== undefined) {
    const everything = JSON.stringify(gw.log.lines) + JSON.stringify(gw.appLog) + res.body
    // The signature alone is unique to this token; the payload segment is checked too.
    const [, payload, signature] = expected.token.split('.')
    t.notOk(everything.includes(payload), 'no token payload in the access log, the app log or the body')
    if (signature !== '') t.notOk(everything.includes(signature), 'no token signature in the logs or the body')
  }
}

t.test('a valid RS256 token passes: consumer is sub, the Authorization header stops at the gateway', async (t) => {
  const up = await upstream(t)
  const gw = await gateway(t, up)
  const token = rs256(valid())
  const res = await call(gw, bearer(token))
  t.equal(res.status, 200)
  t.match(res.line, { status: 200, consumer: 'user-42', response_source: 'upstream', api_name: 'Payments' })
  t.equal(res.line.response_flag, undefined)
  t.equal(up.hits, 1)
  t.equal(up.headers[0].authorization, undefined, 'the token is not forwarded by default')
  t.notOk(JSON.stringify(gw.log.lines).includes(token.split('.')[2]))
})

t.test('no Authorization header is AMF 401', async (t) => {
  const up = await upstream(t)
  const gw = await gateway(t, up)
  const res = await call(gw)
  assertDenied(t, gw, res, up, { flag: 'AMF', status: 401, details: 'auth_field_missing', message: 'Authorization field missing' })
  t.equal(res.headers['www-authenticate'], 'Bearer', 'the 401 says how to authenticate (RFC 6750: no error code without a token)')
})

t.test('a malformed Authorization header is IHD 400 (category client), never TKI', async (t) => {
  const up = await upstream(t)
  const gw = await gateway(t, up)
  const token = rs256(valid())
  const malformed = {
    'another scheme': `Basic ${Buffer.from('user:pass').toString('base64')}`,
    'a JWT under another scheme': `Token ${token}`,
    'Bearer alone': 'Bearer',
    'Bearer and spaces': 'Bearer    ',
    'two tokens': `Bearer ${token} ${token}`,
    'not three segments': 'Bearer not-a-jwt',
    'four segments': `Bearer ${token}.extra`,
    'not base64url': 'Bearer ab+c.de/f.gh=='
  }
  for (const [name, authorization] of Object.entries(malformed)) {
    assertDenied(t, gw, await call(gw, { authorization }), up, {
      flag: 'IHD', status: 400, details: 'invalid_header', message: 'The request is malformed', category: 'client', token
    })
    t.comment(name)
  }
})

t.test('an expired token is TKE 401 and names its consumer', async (t) => {
  const up = await upstream(t)
  const gw = await gateway(t, up)
  const token = rs256(valid({ exp: now() - 60 }))
  const res = await call(gw, bearer(token))
  assertDenied(t, gw, res, up, {
    flag: 'TKE', status: 401, details: 'token_expired', message: 'The token has expired', consumer: 'user-42', token
  })
  t.equal(res.headers['www-authenticate'], 'Bearer error="invalid_token"')
})

t.test('a token whose nbf is in the future is TKN 401, not the 500 @fastify/jwt answers', async (t) => {
  const up = await upstream(t)
  const gw = await gateway(t, up)
  const token = rs256(valid({ nbf: now() + 600 }))
  const res = await call(gw, bearer(token))
  assertDenied(t, gw, res, up, {
    flag: 'TKN', status: 401, details: 'token_not_yet_valid', message: 'The token is not valid yet', consumer: 'user-42', token
  })
  t.same(gw.appLog, [], 'not logged as an unexpected error')
})

t.test('a bad signature is TKI 401 with no consumer', async (t) => {
  const up = await upstream(t)
  const gw = await gateway(t, up)
  const token = jwt({ alg: 'RS256', key: otherRsa.privateKey }, valid({ sub: 'mallory' }))
  assertDenied(t, gw, await call(gw, bearer(token)), up, {
    flag: 'TKI', status: 401, details: 'token_invalid', message: 'The token is invalid', token
  })
})

t.test('three base64url segments that are not a JWT are TKI 401', async (t) => {
  const up = await upstream(t)
  const gw = await gateway(t, up)
  const notJson = `${Buffer.from('not json').toString('base64url')}.${Buffer.from('{}').toString('base64url')}.c2ln`
  assertDenied(t, gw, await call(gw, bearer(notJson)), up, { flag: 'TKI', status: 401, details: 'token_invalid', message: 'The token is invalid', token: notJson })
  const arrayPayload = `${Buffer.from('{"alg":"RS256"}').toString('base64url')}.${Buffer.from('[1]').toString('base64url')}.c2ln`
  assertDenied(t, gw, await call(gw, bearer(arrayPayload)), up, { flag: 'TKI', status: 401, details: 'token_invalid', message: 'The token is invalid', token: arrayPayload })
})

t.test('an unsigned alg:none token is TKI 401', async (t) => {
  const up = await upstream(t)
  const gw = await gateway(t, up)
  const token = jwt({ alg: 'none' }, valid())
  t.ok(token.endsWith('.'), 'an empty signature segment')
  assertDenied(t, gw, await call(gw, bearer(token)), up, { flag: 'TKI', status: 401, details: 'token_invalid', message: 'The token is invalid', token })
})

t.test('an HS512 token on an HS256-only API is TKI 401, not the 500 @fastify/jwt answers', async (t) => {
  const up = await upstream(t)
  const gw = await gateway(t, up, { type: 'jwt', algorithms: ['HS256'], secret: SECRET })
  const ok = await call(gw, bearer(jwt({ alg: 'HS256', key: SECRET }, valid())))
  t.equal(ok.status, 200, 'HS256 with the secret passes')
  up.hits = 0
  const token = jwt({ alg: 'HS512', key: SECRET }, valid())
  assertDenied(t, gw, await call(gw, bearer(token)), up, { flag: 'TKI', status: 401, details: 'token_invalid', message: 'The token is invalid', token })
  t.same(gw.appLog, [], 'not logged as an unexpected error')
})

t.test('key confusion: an HS256 token signed with the RSA public key as the secret is TKI 401', async (t) => {
  const up = await upstream(t)
  const gw = await gateway(t, up)
  const token = jwt({ alg: 'HS256', key: RSA_PUBLIC_PEM }, valid({ sub: 'mallory' }))
  assertDenied(t, gw, await call(gw, bearer(token)), up, { flag: 'TKI', status: 401, details: 'token_invalid', message: 'The token is invalid', token })
})

t.test('a wrong issuer is TCV 401 and names its consumer', async (t) => {
  const up = await upstream(t)
  const gw = await gateway(t, up)
  const token = rs256(valid({ iss: 'https://evil.example' }))
  assertDenied(t, gw, await call(gw, bearer(token)), up, {
    flag: 'TCV', status: 401, details: 'token_claims_invalid', message: 'The token claims are not accepted', consumer: 'user-42', token
  })
})

t.test('an audience outside the accepted list is TCV 401; one of several audiences is enough', async (t) => {
  const up = await upstream(t)
  const gw = await gateway(t, up)
  t.equal((await call(gw, bearer(rs256(valid({ aud: ['crm', 'billing'] }))))).status, 200, 'billing is accepted')
  up.hits = 0
  const token = rs256(valid({ aud: 'crm' }))
  assertDenied(t, gw, await call(gw, bearer(token)), up, {
    flag: 'TCV', status: 401, details: 'token_claims_invalid', message: 'The token claims are not accepted', consumer: 'user-42', token
  })
})

t.test('a missing required claim is TCV 401', async (t) => {
  const up = await upstream(t)
  const gw = await gateway(t, up, { ...RS_AUTH, requiredClaims: ['sub', 'tenant'] })
  const token = rs256(valid())
  assertDenied(t, gw, await call(gw, bearer(token)), up, {
    flag: 'TCV', status: 401, details: 'token_claims_invalid', message: 'The token claims are not accepted', consumer: 'user-42', token
  })
})

t.test('an exp that is not a number is a malformed token: TKI 401, not TCV', async (t) => {
  const up = await upstream(t)
  const gw = await gateway(t, up)
  const token = rs256(valid({ exp: 'tomorrow' }))
  assertDenied(t, gw, await call(gw, bearer(token)), up, { flag: 'TKI', status: 401, details: 'token_invalid', message: 'The token is invalid', token })
})

t.test('a token without a required scope is ACD 403 and names its consumer', async (t) => {
  const up = await upstream(t)
  const gw = await gateway(t, up, { ...RS_AUTH, requiredScopes: ['payments:write', 'payments:read'] })
  const token = rs256(valid({ scope: 'payments:read profile' }))
  assertDenied(t, gw, await call(gw, bearer(token)), up, {
    flag: 'ACD', status: 403, details: 'access_denied', message: 'Access to this API has been disallowed', consumer: 'user-42', token
  })
})

t.test('required scopes are found in scope (space-separated) or scp (array)', async (t) => {
  const up = await upstream(t)
  const gw = await gateway(t, up, { ...RS_AUTH, requiredScopes: ['payments:write', 'payments:read'] })
  t.equal((await call(gw, bearer(rs256(valid({ scope: 'profile payments:write payments:read' }))))).status, 200)
  t.equal((await call(gw, bearer(rs256(valid({ scp: ['payments:read', 'payments:write'] }))))).status, 200)
  t.equal(up.hits, 2)
})

t.test('clockTolerance lets a token that expired a few seconds ago in', async (t) => {
  const up = await upstream(t)
  const strict = await gateway(t, up)
  const lenient = await gateway(t, up, { ...RS_AUTH, clockTolerance: 30 })
  const token = rs256(valid({ exp: now() - 5 }))
  t.equal((await call(strict, bearer(token))).line.response_flag, 'TKE', 'without tolerance it is expired')
  const res = await call(lenient, bearer(token))
  t.equal(res.status, 200)
  t.equal(res.line.consumer, 'user-42')
  t.equal((await call(lenient, bearer(rs256(valid({ exp: now() - 60 }))))).line.response_flag, 'TKE', 'but not one that expired beyond it')
})

t.test('claimHeaders reach the upstream from the verified claims and replace spoofed ones', async (t) => {
  const up = await upstream(t)
  const gw = await gateway(t, up, {
    ...RS_AUTH,
    claimHeaders: { sub: 'x-consumer-id', tenant: 'X-Tenant', admin: 'x-admin', level: 'x-level', org: 'x-org', missing: 'x-missing' }
  })
  const token = rs256(valid({ tenant: 'acme', admin: false, level: 3, org: { id: 7, name: 'Acme' } }))
  const res = await call(gw, {
    ...bearer(token),
    'x-consumer-id': 'spoofed-admin',
    'x-tenant': 'spoofed-tenant',
    'x-admin': 'true',
    'x-missing': 'spoofed'
  })
  t.equal(res.status, 200)
  const seen = up.headers[0]
  t.equal(seen['x-consumer-id'], 'user-42')
  t.equal(seen['x-tenant'], 'acme')
  t.equal(seen['x-admin'], 'false')
  t.equal(seen['x-level'], '3')
  t.equal(seen['x-org'], '{"id":7,"name":"Acme"}')
  t.equal(seen['x-missing'], undefined, 'a header whose claim is absent is removed, not passed through')
})

t.test('forwardToken: true keeps the Authorization header for the upstream', async (t) => {
  const up = await upstream(t)
  const gw = await gateway(t, up, { ...RS_AUTH, forwardToken: true })
  const token = rs256(valid())
  t.equal((await call(gw, bearer(token))).status, 200)
  t.equal(up.headers[0].authorization, `Bearer ${token}`)
})

t.test('ES256 tokens verify against an EC P-256 public key', async (t) => {
  const up = await upstream(t)
  const gw = await gateway(t, up, { type: 'jwt', algorithms: ['ES256'], publicKey: EC_PUBLIC_PEM })
  const res = await call(gw, bearer(jwt({ alg: 'ES256', key: ec.privateKey }, valid({ sub: 'ec-user' }))))
  t.equal(res.status, 200)
  t.equal(res.line.consumer, 'ec-user')
  const forged = jwt({ alg: 'ES256', key: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey }, valid())
  t.equal((await call(gw, bearer(forged))).line.response_flag, 'TKI', 'another EC key is refused')
})

t.test('two APIs with their own JWT settings in one gateway do not clash', async (t) => {
  const up = await upstream(t)
  const gw = await startGateway([
    { name: 'Payments', prefix: '/pay', upstream: { targets: [up.url] }, auth: RS_AUTH },
    { name: 'Internal', prefix: '/int', upstream: { targets: [up.url] }, auth: { type: 'jwt', algorithms: ['HS256'], secret: SECRET } }
  ])
  t.teardown(() => gw.app.close())
  const rsToken = rs256(valid())
  const hsToken = jwt({ alg: 'HS256', key: SECRET }, { sub: 'svc' })
  t.equal((await call(gw, bearer(rsToken), '/pay/x')).status, 200)
  t.equal((await call(gw, bearer(hsToken), '/int/x')).status, 200)
  t.equal((await call(gw, bearer(hsToken), '/pay/x')).line.response_flag, 'TKI', 'each API keeps its own key and algorithms')
  t.equal((await call(gw, bearer(rsToken), '/int/x')).line.response_flag, 'TKI')
  t.notOk('jwt' in gw.app, 'nothing is decorated on the application')
})

t.test("the application's own @fastify/jwt and the API's JWT auth live side by side", async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fastifyJwt, { secret: 'the-application-own-secret-0123456789' })
  await app.register(core)
  await app.register(async (api) => {
    await api.register(auth, { type: 'jwt', algorithms: ['HS256'], secret: SECRET })
    api.get('/api', async (_request, reply) => ({ consumer: reply.faultline?.consumer }))
  })
  app.get('/own', async (request) => await request.jwtVerify())
  const appToken = app.jwt.sign({ sub: 'app-user' })
  const apiToken = jwt({ alg: 'HS256', key: SECRET }, { sub: 'api-user' })
  t.same((await app.inject({ url: '/api', headers: bearer(apiToken) })).json(), { consumer: 'api-user' })
  t.equal((await app.inject({ url: '/api', headers: bearer(appToken) })).statusCode, 401, "the application's key does not open the API")
  t.match((await app.inject({ url: '/own', headers: bearer(appToken) })).json(), { sub: 'app-user' }, "the application's own verification still works")
  t.same(Object.keys(app.jwt).sort(), ['cookie', 'decode', 'lookupToken', 'options', 'sign', 'verify'], "the application's jwt decorator is untouched")
})

t.test('bad options are refused at registration, never echoing a secret', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  const refused = async (options: Partial<JwtAuthOptions>, pattern: RegExp): Promise<string> => {
    const err = await createJwtAuthenticator(app, { type: 'jwt', ...options } as JwtAuthOptions).then(() => null, (e: Error) => e)
    t.match(err, { name: 'TypeError', message: pattern }, pattern.source)
    return err?.message ?? ''
  }
  await refused({}, /option "algorithms" must be a non-empty array of JWS algorithms .*got undefined/)
  await refused({ algorithms: [] }, /option "algorithms" must be a non-empty array/)
  await refused({ algorithms: ['none'], secret: SECRET }, /option "algorithms\[0\]" must be a signing algorithm: "none" would accept unsigned tokens, got "none"/)
  await refused({ algorithms: ['HS257'], secret: SECRET }, /option "algorithms\[0\]" must be one of HS256, .*EdDSA, got "HS257"/)
  await refused({ algorithms: ['HS256', 'RS256'], secret: SECRET, publicKey: RSA_PUBLIC_PEM }, /option "algorithms" must be either HS\* algorithms .* not both, got \["HS256","RS256"\]/)
  await refused({ algorithms: ['HS256'] }, /option "secret" must be a non-empty string for HS256, got nothing/)
  await refused({ algorithms: ['HS256'], secret: SECRET, publicKey: RSA_PUBLIC_PEM }, /option "publicKey" is not used with HS256/)
  await refused({ algorithms: ['HS256'], secret: RSA_PUBLIC_PEM }, /option "secret" must be a raw shared secret, got what looks like a PEM key/)
  const short = await refused({ algorithms: ['HS512'], secret: SECRET }, /option "secret" must be at least 64 bytes for HS512 \(RFC 7518 section 3.2\), got 37 bytes/)
  t.notOk(short.includes(SECRET), 'the secret is not echoed')
  await refused({ algorithms: ['RS256'] }, /option "publicKey" must be a PEM public key for RS256, got nothing/)
  const both = await refused({ algorithms: ['RS256'], publicKey: RSA_PUBLIC_PEM, secret: SECRET }, /option "secret" is not used with RS256/)
  t.notOk(both.includes(SECRET), 'the secret is not echoed')
  const priv = await refused({ algorithms: ['RS256'], publicKey: rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() }, /option "publicKey" must be a public key, got a private key/)
  t.notOk(priv.includes('PRIVATE KEY-----\n'), 'the private key is not echoed')
  await refused({ algorithms: ['RS256'], publicKey: '-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----' }, /option "publicKey" must be a PEM public key .*does not parse/)
  await refused({ algorithms: ['ES256'], publicKey: RSA_PUBLIC_PEM }, /option "publicKey" must be an EC P-256 key for ES256, got an rsa key/)
  await refused({ algorithms: ['RS256', 'ES256'], publicKey: RSA_PUBLIC_PEM }, /option "publicKey" must be an EC P-256 key for ES256/)
  await refused({ ...RS_AUTH, clockTolerance: -1 }, /option "clockTolerance" must be a number of seconds >= 0, got -1/)
  await refused({ ...RS_AUTH, issuer: [] }, /option "issuer" must be a non-empty string or a non-empty array of strings, got \[\]/)
  await refused({ ...RS_AUTH, audience: ['ok', ''] }, /option "audience\[1\]" must be a non-empty string, got ""/)
  await refused({ ...RS_AUTH, requiredScopes: ['a b'] }, /option "requiredScopes\[0\]" must be a scope without spaces, got "a b"/)
  await refused({ ...RS_AUTH, claimHeaders: { sub: 'x consumer' } }, /option "claimHeaders.sub" must be a header name, got "x consumer"/)
  await refused({ ...RS_AUTH, claimHeaders: { sub: 'Authorization' } }, /option "claimHeaders.sub" must be a header that carries no credential .*, got "Authorization"/)
  await refused({ ...RS_AUTH, claimHeaders: { sub: 'x-user', email: 'X-User' } }, /option "claimHeaders.email" must be a header no other claim is mapped to, got "X-User"/)
  await refused({ ...RS_AUTH, forwardToken: 'yes' as unknown as boolean }, /option "forwardToken" must be a boolean, got "yes"/)
})

t.test('a bad option fails the gateway at registration', async (t) => {
  const up = await upstream(t)
  await t.rejects(
    startGateway([{ name: 'Payments', prefix: '/pay', upstream: { targets: [up.url] }, auth: { type: 'jwt', algorithms: ['none'] } }]),
    { name: 'TypeError', message: /option "algorithms\[0\]" must be a signing algorithm/ }
  )
})

t.test('an unknown option is refused at registration', async (t) => {
  const up = await upstream(t)
  await t.rejects(
    startGateway([{ name: 'Payments', prefix: '/pay', upstream: { targets: [up.url] }, auth: { ...RS_AUTH, audiance: 'typo' } as JwtAuthOptions }]),
    { name: 'TypeError', message: /unknown option "audiance" for type jwt/ }
  )
})
