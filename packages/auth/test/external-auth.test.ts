import http from 'node:http'
import https from 'node:https'
import net, { type AddressInfo, type Socket } from 'node:net'
import t, { type Test } from 'tap'
import Fastify from 'fastify'
import core from '@faultline/core'
import auth, { createExternalAuthenticator, type ExternalAuthOptions } from '@faultline/auth'
import { createCa, createLeaf } from '@faultline/fault-lab'
import { startGateway, type TestGateway } from '../../../test/helpers/gateway.js'
import { httpRequest, type HttpAnswer } from '../../../test/helpers/http-client.js'
import { recordingUpstream as upstream, type RecordingUpstream as Upstream } from '../../../test/helpers/upstream.js'

const TOKEN = 'Bearer tok_7Hq2xZ9pLm4vN1'
const OTHER_TOKEN = 'Bearer tok_other_B3kW8s'
/** Every credential the tests send: none may appear in a log line or a client body. */
const SECRET = /tok_|sess=/
const TIMEOUT = 300
/** A private CA and an auth service certificate it signed (two keys: fast to make). */
const privateCa = createCa({ commonName: 'Auth Test Root CA' })
const serviceCert = createLeaf({ issuer: privateCa, commonName: 'localhost', altNames: [{ dns: 'localhost' }] })

interface AuthCall { method: string, url: string, headers: http.IncomingHttpHeaders }

interface AuthService {
  url: string
  /** `host:port`, as the access line's `error_target` names it. */
  target: string
  calls: AuthCall[]
  /** Connections to the service still open (http services only). */
  open?: () => number
}

type AuthLine = HttpAnswer & { line: Record<string, unknown>, warnings: Array<Record<string, unknown>> }

async function listen (t: Test, server: net.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    server.close()
    if (server instanceof http.Server) server.closeAllConnections()
  })
  return (server.address() as AddressInfo).port
}

/** A real auth service on loopback: `decide` answers each check. */
async function authService (t: Test, decide: (req: http.IncomingMessage, res: http.ServerResponse) => void, path = '/check?realm=payments'): Promise<AuthService> {
  const calls: AuthCall[] = []
  const server = http.createServer((req, res) => {
    calls.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers })
    decide(req, res)
  })
  let open = 0
  server.on('connection', (socket: Socket) => {
    open++
    socket.on('close', () => { open-- })
  })
  const port = await listen(t, server)
  return { url: `http://127.0.0.1:${port}${path}`, target: `127.0.0.1:${port}`, calls, open: () => open }
}

/** A TCP server that does `onSocket` with every connection (for answers that are not HTTP). */
async function rawService (t: Test, onSocket: (socket: Socket) => void): Promise<AuthService> {
  const sockets = new Set<Socket>()
  const server = net.createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    onSocket(socket)
  })
  const port = await listen(t, server)
  t.teardown(() => { for (const s of sockets) s.destroy() })
  return { url: `http://127.0.0.1:${port}/check`, target: `127.0.0.1:${port}`, calls: [] }
}

async function gateway (t: Test, up: Upstream, options: Partial<ExternalAuthOptions> & { url: string }): Promise<TestGateway> {
  const gw = await startGateway([{
    name: 'Payments',
    prefix: '/pay',
    upstream: { targets: [up.url] },
    auth: { type: 'external', timeout: TIMEOUT, ...options }
  }])
  t.teardown(() => gw.app.close())
  return gw
}

async function call (gw: TestGateway, path: string, headers: Record<string, string> = { authorization: TOKEN }): Promise<AuthLine> {
  const before = gw.log.lines.length
  const warnedBefore = gw.appLog.length
  const res = await httpRequest(gw.url, { path, headers })
  const lines = await gw.log.waitFor(before + 1)
  return { ...res, line: lines[before], warnings: gw.appLog.slice(warnedBefore) }
}

function assertNoSecrets (t: Test, gw: TestGateway, res: AuthLine): void {
  t.notMatch(JSON.stringify(gw.log.lines), SECRET, 'no credential in the access lines')
  t.notMatch(JSON.stringify(gw.appLog), SECRET, 'no credential in the app log')
  t.notMatch(res.body, SECRET, 'no credential in the client body')
}

function assertDenied (t: Test, gw: TestGateway, res: AuthLine, up: Upstream): void {
  t.equal(res.status, 403)
  t.same(JSON.parse(res.body), { statusCode: 403, error: 'Forbidden', message: 'Access denied', request_id: res.line.request_id })
  t.match(res.line, { status: 403, response_flag: 'EAD', response_code_details: 'external_auth_denied', error_source: 'ExternalAuth', error_category: 'auth', api_name: 'Payments', response_source: 'gateway' })
  t.equal(res.line.error_target, undefined, 'a denial is a decision, not a failure of the service')
  t.equal(up.hits, 0, 'a denied request never reaches the upstream')
  t.same(res.warnings, [], 'a denial is not an app-log warning')
  assertNoSecrets(t, gw, res)
}

/** EAE 503, target the service, and one warn line naming the reason. */
function assertUnavailable (t: Test, gw: TestGateway, res: AuthLine, up: Upstream, service: AuthService, reason: string, extra: Record<string, unknown> = {}): void {
  t.equal(res.status, 503)
  t.same(JSON.parse(res.body), { statusCode: 503, error: 'Service Unavailable', message: 'The authorization service is unavailable', request_id: res.line.request_id })
  t.match(res.line, {
    status: 503,
    response_flag: 'EAE',
    response_code_details: 'external_auth_error',
    error_source: 'ExternalAuth',
    error_category: 'auth',
    error_target: service.target,
    api_name: 'Payments',
    response_source: 'gateway'
  })
  t.equal(up.hits, 0, 'the upstream received nothing')
  t.equal(res.warnings.length, 1, 'one app-log line')
  t.match(res.warnings[0], { level: 40, msg: 'faultline: external auth failed', external_auth: service.target, reason, request_id: res.line.request_id, ...extra })
  assertNoSecrets(t, gw, res)
}

t.test('an allowing answer lets the request through; result headers and the consumer come from it', async (t) => {
  const up = await upstream(t)
  const service = await authService(t, (_req, res) => {
    res.writeHead(200, { 'x-consumer-id': 'acme', 'x-user-id': 'u-42', 'x-user-roles': 'admin,billing', 'x-internal-note': 'not listed' })
    res.end('{"allow":true}')
  })
  const gw = await gateway(t, up, { url: service.url, resultHeaders: ['X-User-Id', 'x-user-roles'] })
  const res = await call(gw, '/pay/charges?limit=1', { authorization: TOKEN })
  t.equal(res.status, 200)
  t.equal(res.body, '{"ok":true}')
  t.match(res.line, { status: 200, consumer: 'acme', response_source: 'upstream', api_name: 'Payments' })
  t.equal(res.line.response_flag, undefined)
  t.equal(up.hits, 1)
  t.equal(up.headers[0]['x-user-id'], 'u-42')
  t.equal(up.headers[0]['x-user-roles'], 'admin,billing')
  t.equal(up.headers[0]['x-internal-note'], undefined, 'only the listed result headers are copied')
  t.equal(up.headers[0]['x-consumer-id'], 'acme', 'the upstream learns the consumer from the gateway')
  t.same(res.warnings, [])
  assertNoSecrets(t, gw, res)
})

t.test('the service gets a GET on its own path and query, the listed headers and the client method and uri, nothing else', async (t) => {
  const up = await upstream(t)
  const service = await authService(t, (_req, res) => { res.end() })
  const gw = await gateway(t, up, { url: service.url, forwardHeaders: ['Authorization', 'X-Tenant'] })
  const res = await call(gw, '/pay/charges/ch_1?expand=customer', {
    authorization: TOKEN,
    'x-tenant': 'globex',
    cookie: 'sess=abc123',
    'x-api-key': 'tok_not_listed',
    'user-agent': 'curl/8'
  })
  t.equal(res.status, 200)
  t.equal(service.calls.length, 1)
  const [check] = service.calls
  t.equal(check.method, 'GET')
  t.equal(check.url, '/check?realm=payments', 'the configured path and query are kept')
  t.equal(check.headers.authorization, TOKEN)
  t.equal(check.headers['x-tenant'], 'globex')
  t.equal(check.headers['x-forwarded-method'], 'GET')
  t.equal(check.headers['x-forwarded-uri'], '/pay/charges/ch_1?expand=customer', 'the path and query the client sent')
  const allowed = ['host', 'connection', 'authorization', 'x-tenant', 'x-forwarded-method', 'x-forwarded-uri']
  t.same(Object.keys(check.headers).filter((name) => !allowed.includes(name)), [], 'no other header reaches the service')
  t.equal(check.headers.host, service.target)
})

t.test('the client method reaches the service as x-forwarded-method (the check itself is a GET)', async (t) => {
  const up = await upstream(t)
  const service = await authService(t, (_req, res) => { res.end() })
  const gw = await gateway(t, up, { url: service.url })
  const before = gw.log.lines.length
  const res = await httpRequest(gw.url, { path: '/pay/charges', method: 'POST', headers: { authorization: TOKEN, 'content-type': 'application/json' }, body: '{"amount":1}' })
  await gw.log.waitFor(before + 1)
  t.equal(res.status, 200)
  t.equal(service.calls[0].method, 'GET')
  t.equal(service.calls[0].headers['x-forwarded-method'], 'POST')
  t.equal(service.calls[0].headers['content-length'], undefined, 'the client body is not sent to the service')
})

t.test('result headers a client sends are replaced by the service answer, or removed when it has none', async (t) => {
  const up = await upstream(t)
  let answerWithHeader = true
  const service = await authService(t, (_req, res) => {
    res.writeHead(204, answerWithHeader ? { 'x-user-id': 'u-42' } : {})
    res.end()
  })
  const gw = await gateway(t, up, { url: service.url, resultHeaders: ['x-user-id', 'x-user-roles'] })
  const spoofed = { authorization: TOKEN, 'x-user-id': 'admin', 'x-user-roles': 'superuser' }
  t.equal((await call(gw, '/pay/', spoofed)).status, 200)
  t.equal(up.headers[0]['x-user-id'], 'u-42', 'replaced by the answer')
  t.equal(up.headers[0]['x-user-roles'], undefined, 'removed: the answer did not carry it')
  t.equal(service.calls[0].headers['x-user-id'], undefined, 'not forwarded to the service either')
  answerWithHeader = false
  t.equal((await call(gw, '/pay/', spoofed)).status, 200)
  t.equal(up.headers[1]['x-user-id'], undefined)
  t.equal(up.headers[1]['x-user-roles'], undefined)
})

t.test('a 401 from the service is EAD 403; its body and headers never reach the client', async (t) => {
  const up = await upstream(t)
  const service = await authService(t, (_req, res) => {
    res.writeHead(401, { 'www-authenticate': 'Bearer realm="internal-sso"', 'x-debug': 'user-db-7' })
    res.end('token revoked at 12:03 by admin@internal')
  })
  const gw = await gateway(t, up, { url: service.url })
  const res = await call(gw, '/pay/charges')
  assertDenied(t, gw, res, up)
  t.equal(res.headers['www-authenticate'], undefined)
  t.equal(res.headers['x-debug'], undefined)
  t.notMatch(res.body, /revoked|internal/)
  t.equal(res.line.consumer, undefined)
})

t.test('a 403 from the service is EAD 403 and names the consumer it gives', async (t) => {
  const up = await upstream(t)
  const service = await authService(t, (_req, res) => {
    res.writeHead(403, { 'x-consumer-id': 'globex', 'x-user-id': 'u-7' })
    res.end('{"reason":"plan does not include payments"}')
  })
  const gw = await gateway(t, up, { url: service.url, resultHeaders: ['x-user-id'] })
  const res = await call(gw, '/pay/charges')
  assertDenied(t, gw, res, up)
  t.equal(res.line.consumer, 'globex')
  t.notMatch(res.body, /plan/)
})

t.test('a request without the credential is still asked about (the service decides); its denial is EAD', async (t) => {
  const up = await upstream(t)
  const service = await authService(t, (req, res) => {
    res.statusCode = req.headers.authorization === undefined ? 401 : 200
    res.end()
  })
  const gw = await gateway(t, up, { url: service.url })
  assertDenied(t, gw, await call(gw, '/pay/charges', {}), up)
  t.equal(service.calls.length, 1)
})

t.test('a service that is down (closed port) is EAE 503, reason connection_refused', async (t) => {
  const up = await upstream(t)
  const probe = net.createServer()
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
  const port = (probe.address() as AddressInfo).port
  await new Promise<void>((resolve) => probe.close(() => resolve()))
  const service: AuthService = { url: `http://127.0.0.1:${port}/check`, target: `127.0.0.1:${port}`, calls: [] }
  const gw = await gateway(t, up, { url: service.url })
  assertUnavailable(t, gw, await call(gw, '/pay/charges'), up, service, 'connection_refused')
})

t.test('a service that answers after the timeout is EAE 503, reason response_timeout, within the timeout', async (t) => {
  const up = await upstream(t)
  const timers = new Set<NodeJS.Timeout>()
  t.teardown(() => { for (const timer of timers) clearTimeout(timer) })
  const service = await authService(t, (_req, res) => {
    timers.add(setTimeout(() => { res.end() }, TIMEOUT * 3))
  })
  const gw = await gateway(t, up, { url: service.url })
  const res = await call(gw, '/pay/charges')
  assertUnavailable(t, gw, res, up, service, 'response_timeout')
  const total = res.line.latency_total as number
  t.ok(total >= TIMEOUT - 5 && total < TIMEOUT * 2, `decided at the timeout (${total} ms)`)
})

t.test('an answer whose body stalls past the timeout is EAE 503, reason body_timeout', async (t) => {
  const up = await upstream(t)
  const service = await authService(t, (_req, res) => {
    res.writeHead(200, { 'content-length': '100' })
    res.write('partial')
  })
  const gw = await gateway(t, up, { url: service.url })
  assertUnavailable(t, gw, await call(gw, '/pay/charges'), up, service, 'body_timeout')
})

t.test('an https service that never finishes the handshake is EAE 503, reason connection_timeout', async (t) => {
  const up = await upstream(t)
  const silent = await rawService(t, () => {})
  const service: AuthService = { ...silent, url: silent.url.replace('http:', 'https:') }
  const gw = await gateway(t, up, { url: service.url })
  const res = await call(gw, '/pay/charges')
  assertUnavailable(t, gw, res, up, service, 'connection_timeout')
  const total = res.line.latency_total as number
  t.ok(total >= TIMEOUT - 5 && total < TIMEOUT * 1.5, `decided at the timeout, not at undici's coarser connect timer (${total} ms)`)
})

t.test('a 500 from the service is EAE 503, with its status in the warn line', async (t) => {
  const up = await upstream(t)
  const service = await authService(t, (_req, res) => {
    res.writeHead(500, { 'x-debug': 'db down' })
    res.end('internal stack trace here')
  })
  const gw = await gateway(t, up, { url: service.url })
  const res = await call(gw, '/pay/charges')
  assertUnavailable(t, gw, res, up, service, 'unexpected_status', { status: 500 })
  t.notMatch(res.body, /stack|db down/)
  t.equal(res.headers['x-debug'], undefined)
})

t.test('a redirect or another status than 2xx, 401, 403 is EAE 503 (redirects are not followed)', async (t) => {
  const up = await upstream(t)
  const target = await authService(t, (_req, res) => { res.end() })
  let status = 302
  const service = await authService(t, (_req, res) => {
    res.writeHead(status, { location: target.url })
    res.end()
  })
  const gw = await gateway(t, up, { url: service.url })
  assertUnavailable(t, gw, await call(gw, '/pay/charges'), up, service, 'unexpected_status', { status: 302 })
  t.equal(target.calls.length, 0, 'the redirect was not followed')
  status = 404
  const gw404 = await gateway(t, up, { url: service.url })
  assertUnavailable(t, gw404, await call(gw404, '/pay/charges'), up, service, 'unexpected_status', { status: 404 })
})

t.test('a service that keeps failing gives one warn line per interval, not one per request', async (t) => {
  const up = await upstream(t)
  const service = await authService(t, (_req, res) => {
    res.writeHead(500)
    res.end()
  })
  const gw = await gateway(t, up, { url: service.url })
  const statuses = []
  for (let i = 0; i < 20; i++) statuses.push((await call(gw, '/pay/charges')).status)
  t.same(new Set(statuses), new Set([503]))
  t.equal(gw.log.lines.filter((l) => l.response_flag === 'EAE').length, 20, 'every request has its access line')
  t.equal(gw.appLog.filter((l) => l.msg === 'faultline: external auth failed').length, 1, 'one app-log warning')
})

t.test('garbage that is not HTTP is EAE 503, reason upstream_protocol_error', async (t) => {
  const up = await upstream(t)
  const service = await rawService(t, (socket) => {
    socket.once('data', () => { socket.end('HELLO THIS IS NOT HTTP\r\n\r\n') })
  })
  const gw = await gateway(t, up, { url: service.url })
  assertUnavailable(t, gw, await call(gw, '/pay/charges'), up, service, 'upstream_protocol_error')
})

t.test('a connection reset by the service is EAE 503, reason connection_reset', async (t) => {
  const up = await upstream(t)
  const service = await rawService(t, (socket) => {
    socket.once('data', () => { socket.resetAndDestroy() })
  })
  const gw = await gateway(t, up, { url: service.url })
  assertUnavailable(t, gw, await call(gw, '/pay/charges'), up, service, 'connection_reset')
})

t.test('a service that closes without answering is EAE 503, reason upstream_closed_connection', async (t) => {
  const up = await upstream(t)
  const service = await rawService(t, (socket) => {
    socket.once('data', () => { socket.end() })
  })
  const gw = await gateway(t, up, { url: service.url })
  assertUnavailable(t, gw, await call(gw, '/pay/charges'), up, service, 'upstream_closed_connection')
})

t.test('a large allowing answer is not buffered: the request passes and the next check still works', async (t) => {
  const up = await upstream(t)
  const chunk = Buffer.alloc(64 * 1024, 'a')
  const service = await authService(t, (_req, res) => {
    res.writeHead(200, { 'x-consumer-id': 'big' })
    for (let i = 0; i < 32; i++) res.write(chunk) // 2 MiB
    res.end()
  })
  const gw = await gateway(t, up, { url: service.url })
  t.equal((await call(gw, '/pay/one')).status, 200)
  const res = await call(gw, '/pay/two')
  t.equal(res.status, 200)
  t.equal(res.line.consumer, 'big')
  t.equal(up.hits, 2)
})

t.test('an https service is verified: trusted with `ca`, EAE with the TLS reason without it', async (t) => {
  const up = await upstream(t)
  const calls: AuthCall[] = []
  const server = https.createServer({ key: serviceCert.key, cert: serviceCert.cert }, (req, res) => {
    calls.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers })
    res.writeHead(200, { 'x-consumer-id': 'tls-consumer' })
    res.end()
  })
  const port = await listen(t, server)
  const service: AuthService = { url: `https://localhost:${port}/verify`, target: `localhost:${port}`, calls }

  const trusted = await gateway(t, up, { url: service.url, ca: privateCa.cert })
  const ok = await call(trusted, '/pay/charges')
  t.equal(ok.status, 200)
  t.equal(ok.line.consumer, 'tls-consumer')
  t.equal(calls[0].url, '/verify')

  const untrusted = await gateway(t, up, { url: service.url })
  const hitsBefore = up.hits
  const res = await call(untrusted, '/pay/charges')
  t.equal(res.status, 503)
  t.match(res.line, { response_flag: 'EAE', response_code_details: 'external_auth_error', error_target: service.target })
  // An unknown CA whose server sends only its leaf: the shared classification calls it TLC
  // (a missing intermediate is the common cause in production; see core's README).
  t.match(res.warnings, [{ external_auth: service.target, reason: 'tls_certificate_chain_incomplete' }])
  t.equal(up.hits, hitsBefore)
  t.equal(calls.length, 1, 'the untrusted gateway sent nothing over the unverified connection')
})

t.test('with cacheTtl, an identical request is decided from the cache; another credential or uri asks again', async (t) => {
  const up = await upstream(t)
  const service = await authService(t, (req, res) => {
    res.writeHead(req.headers.authorization === TOKEN ? 200 : 403, { 'x-consumer-id': req.headers.authorization === TOKEN ? 'acme' : 'nobody', 'x-user-id': 'u-42' })
    res.end()
  })
  const gw = await gateway(t, up, { url: service.url, cacheTtl: 2000, resultHeaders: ['x-user-id'] })
  t.equal((await call(gw, '/pay/charges')).status, 200)
  const cached = await call(gw, '/pay/charges', { authorization: TOKEN, 'x-user-id': 'spoofed' })
  t.equal(cached.status, 200)
  t.equal(cached.line.consumer, 'acme', 'the consumer comes from the cache too')
  t.equal(up.headers[1]['x-user-id'], 'u-42', 'cached result headers still replace a spoofed one')
  t.equal(service.calls.length, 1, 'the second request did not reach the service')

  const other = await call(gw, '/pay/charges', { authorization: OTHER_TOKEN })
  assertDenied(t, gw, { ...other }, { ...up, hits: 0 })
  t.equal(service.calls.length, 2, 'another credential is asked about')
  assertDenied(t, gw, await call(gw, '/pay/charges', { authorization: OTHER_TOKEN }), { ...up, hits: 0 })
  t.equal(service.calls.length, 2, 'a denial is cached too')

  t.equal((await call(gw, '/pay/refunds')).status, 200)
  t.equal(service.calls.length, 3, 'another uri is asked about: the service decides per route')
  t.equal(up.hits, 3)
})

t.test('cached decisions expire after cacheTtl', async (t) => {
  const up = await upstream(t)
  const service = await authService(t, (_req, res) => { res.end() })
  const gw = await gateway(t, up, { url: service.url, cacheTtl: 100 })
  await call(gw, '/pay/charges')
  await call(gw, '/pay/charges')
  t.equal(service.calls.length, 1)
  await new Promise((resolve) => setTimeout(resolve, 150))
  await call(gw, '/pay/charges')
  t.equal(service.calls.length, 2)
})

t.test('errors are never cached: a service that recovers is asked again', async (t) => {
  const up = await upstream(t)
  let status = 503
  const service = await authService(t, (_req, res) => {
    res.statusCode = status
    res.end()
  })
  const gw = await gateway(t, up, { url: service.url, cacheTtl: 5000 })
  assertUnavailable(t, gw, await call(gw, '/pay/charges'), up, service, 'unexpected_status', { status: 503 })
  status = 200
  t.equal((await call(gw, '/pay/charges')).status, 200)
  t.equal(service.calls.length, 2)
})

t.test('bad options are rejected at registration, naming the option and the value', async (t) => {
  const pem = privateCa.cert
  const cases: Array<[Partial<ExternalAuthOptions> | Record<string, unknown>, RegExp]> = [
    [{ url: 'ftp://auth.internal/check' }, /option "url" must be an http or https URL, got "ftp:\/\/auth.internal\/check"/],
    [{ url: 'not a url' }, /option "url" must be an http or https URL, got "not a url"/],
    [{}, /option "url" must be an http or https URL, got undefined/],
    [{ url: 'http://127.0.0.1:1/check', timeout: 0 }, /option "timeout" must be an integer number of ms > 0, got 0/],
    [{ url: 'http://127.0.0.1:1/check', timeout: 1.5 }, /option "timeout" .* got 1.5/],
    [{ url: 'http://127.0.0.1:1/check', timeout: '300' }, /option "timeout" .* got "300"/],
    [{ url: 'http://127.0.0.1:1/check', forwardHeaders: 'authorization' }, /option "forwardHeaders" must be an array of header names, got "authorization"/],
    [{ url: 'http://127.0.0.1:1/check', forwardHeaders: ['x bad'] }, /option "forwardHeaders\[0\]" must be a header name, got "x bad"/],
    [{ url: 'http://127.0.0.1:1/check', forwardHeaders: ['authorization', 'Content-Length'] }, /option "forwardHeaders\[1\]" .* got "Content-Length"/],
    [{ url: 'http://127.0.0.1:1/check', resultHeaders: ['host'] }, /option "resultHeaders\[0\]" .* got "host"/],
    [{ url: 'http://127.0.0.1:1/check', cacheTtl: -1 }, /option "cacheTtl" must be an integer number of ms >= 0, got -1/],
    [{ url: 'https://127.0.0.1:1/check', ca: 'not a pem' }, /option "ca" must be PEM certificate\(s\) .* got "not a pem"/],
    [{ url: 'https://127.0.0.1:1/check', ca: [pem, 42] }, /option "ca\[1\]" must be a PEM certificate string, got "number"/],
    [{ url: 'http://127.0.0.1:1/check', ca: pem }, /option "ca" only applies to an https "url"/]
  ]
  for (const [options, message] of cases) {
    const app = Fastify()
    await app.register(core)
    app.register(auth, { type: 'external', ...options } as ExternalAuthOptions)
    await t.rejects(async () => { await app.ready() }, { name: 'TypeError', message }, message.source)
    await app.close()
  }
})

t.test('a url with credentials is rejected without echoing them', async (t) => {
  let message = ''
  try {
    createExternalAuthenticator({ type: 'external', url: 'https://svc:hunter2@auth.internal/check' })
  } catch (err) {
    message = (err as Error).message
  }
  t.match(message, /option "url" must not carry credentials/)
  t.notMatch(message, /hunter2/)
})

t.test('close() releases the agent: a closed gateway leaves no connection to the service', async (t) => {
  const up = await upstream(t)
  const service = await authService(t, (_req, res) => { res.end() })
  const gw = await gateway(t, up, { url: service.url })
  t.equal((await call(gw, '/pay/charges')).status, 200)
  t.equal(service.open?.(), 1, 'the check connection is kept alive between requests')
  await gw.app.close()
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.equal(service.open?.(), 0)
})
