/**
 * Several targets per API: round-robin, retries (only when configured, only idempotent methods),
 * passive marking, active health checks and NHU; plus request rewriting and uploads.
 */
import http from 'node:http'
import net from 'node:net'
import type { LookupAddress, LookupOptions } from 'node:dns'
import type { AddressInfo, LookupFunction } from 'node:net'
import t, { type Test } from 'tap'
import { startGateway, type TestApi, type TestGateway } from '../../../test/helpers/gateway.js'
import { httpRequest, type HttpAnswer } from '../../../test/helpers/http-client.js'
import { closedPort } from '../../../test/helpers/ports.js'

interface Upstream {
  url: string
  address: string
  hits: number
  healthy: boolean
  seen: http.IncomingMessage[]
  close: () => Promise<void>
}

/** A loopback upstream answering `{ from: name }`, with a switchable /health. */
async function upstream (t: Test, name: string, onRequest?: (req: http.IncomingMessage, res: http.ServerResponse) => boolean): Promise<Upstream> {
  const state: Upstream = { url: '', address: '', hits: 0, healthy: true, seen: [], close: async () => {} }
  const server = http.createServer((req, res) => {
    if (req.url === '/health') {
      res.statusCode = state.healthy ? 200 : 503
      res.end()
      return
    }
    state.hits++
    state.seen.push(req)
    if (onRequest?.(req, res) === true) return
    req.resume()
    req.on('end', () => {
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({ from: name, url: req.url }))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  state.url = `http://127.0.0.1:${port}`
  state.address = `127.0.0.1:${port}`
  state.close = async () => {
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
  t.teardown(state.close)
  return state
}

/** A refused upstream (a port below the ephemeral range: see test/helpers/ports.ts). */
async function deadUpstream (): Promise<string> {
  return `http://127.0.0.1:${await closedPort()}`
}

async function gateway (t: Test, apis: TestApi[]): Promise<TestGateway> {
  const gw = await startGateway(apis)
  t.teardown(() => gw.app.close())
  return gw
}

async function send (url: string, path: string, init: { method?: string, body?: string, headers?: Record<string, string> }): Promise<HttpAnswer> {
  return await httpRequest(url, { path, method: init.method ?? 'GET', headers: init.headers, body: init.body })
}

async function get (gw: TestGateway, path: string, init: { method?: string, body?: string, headers?: Record<string, string> } = {}): Promise<HttpAnswer & { line: Record<string, unknown> }> {
  const before = gw.log.lines.length
  const res = await send(gw.url, path, init)
  const lines = await gw.log.waitFor(before + 1)
  return { ...res, line: lines[before] }
}

/** The flag of each of `n` requests in a row (`ok` for none). */
async function flagSequence (gw: TestGateway, path: string, n: number): Promise<string[]> {
  const flags: string[] = []
  for (let i = 0; i < n; i++) flags.push((await get(gw, path)).line.response_flag as string | undefined ?? 'ok')
  return flags
}

function unhealthyWarnings (gw: TestGateway): Array<Record<string, unknown>> {
  return gw.appLog.filter((l) => l.msg === 'faultline: upstream target marked unhealthy')
}

t.test('requests go round-robin over the targets, prefix stripped, query kept', async (t) => {
  const a = await upstream(t, 'a')
  const b = await upstream(t, 'b')
  const gw = await gateway(t, [{ name: 'rr', prefix: '/rr', upstream: { targets: [a.url, b.url + '/base'] } }])
  const answers = []
  for (let i = 0; i < 4; i++) answers.push(JSON.parse((await get(gw, `/rr/items/${i}?x=${i}`)).body))
  t.same(answers.map((x) => x.from), ['a', 'b', 'a', 'b'])
  t.same(answers.map((x) => x.url), ['/items/0?x=0', '/base/items/1?x=1', '/items/2?x=2', '/base/items/3?x=3'], "the target's base path is kept")
  t.same(gw.log.lines.map((l) => l.upstream_addr), [a.address, b.address, a.address, b.address])
})

t.test('the upstream receives the request id and x-forwarded-for, and the body untouched', async (t) => {
  let received = ''
  const a = await upstream(t, 'a', (req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => { received = Buffer.concat(chunks).toString(); res.end('ok') })
    return true
  })
  const gw = await gateway(t, [{ name: 'echo', prefix: '/echo', upstream: { targets: [a.url] } }])
  const payload = '{"amount": 10,   "note": "spaces kept"}'
  const res = await get(gw, '/echo/pay', { method: 'POST', body: payload, headers: { 'content-type': 'application/json', 'x-request-id': 'trace-1' } })
  t.equal(res.status, 200)
  t.equal(received, payload, 'the body is streamed through unparsed')
  t.equal(a.seen[0].headers['x-request-id'], 'trace-1')
  t.equal(a.seen[0].headers['x-forwarded-for'], '127.0.0.1')
  t.equal(a.seen[0].headers.host, a.address)
})

t.test('retries are off by default: a refused first target is one attempt, UCF', async (t) => {
  const dead = await deadUpstream()
  const b = await upstream(t, 'b')
  const gw = await gateway(t, [{ name: 'noretry', prefix: '/noretry', upstream: { targets: [dead, b.url] } }])
  const res = await get(gw, '/noretry/')
  t.equal(res.status, 502)
  t.match(res.line, { response_flag: 'UCF', upstream_attempts: 1 })
})

t.test('with retries, an idempotent request moves on to the next target', async (t) => {
  const dead = await deadUpstream()
  const b = await upstream(t, 'b')
  const gw = await gateway(t, [{ name: 'retry', prefix: '/retry', upstream: { targets: [dead, b.url], retries: 1 } }])
  const res = await get(gw, '/retry/x')
  t.equal(res.status, 200)
  t.equal(JSON.parse(res.body).from, 'b')
  t.match(res.line, { status: 200, upstream_attempts: 2, upstream_addr: b.address, response_source: 'upstream' })
  t.equal(res.line.response_flag, undefined)
})

t.test('with retries, a POST is never replayed', async (t) => {
  const dead = await deadUpstream()
  const b = await upstream(t, 'b')
  const gw = await gateway(t, [{ name: 'post', prefix: '/post', upstream: { targets: [dead, b.url], retries: 2 } }])
  const res = await get(gw, '/post/x', { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } })
  t.equal(res.status, 502)
  t.match(res.line, { response_flag: 'UCF', upstream_attempts: 1 })
  t.equal(b.hits, 0)
})

t.test('with retries, an upstream 503 is not retried', async (t) => {
  const a = await upstream(t, 'a', (_req, res) => { res.statusCode = 503; res.setHeader('retry-after', '1'); res.end('busy'); return true })
  const gw = await gateway(t, [{ name: 'busy', prefix: '/busy', upstream: { targets: [a.url], retries: 3 } }])
  const res = await get(gw, '/busy/')
  t.equal(res.status, 503)
  t.equal(res.body, 'busy')
  t.equal(a.hits, 1)
  t.match(res.line, { response_flag: 'URS', upstream_attempts: 1 })
})

t.test('passive marking takes a failing target out of rotation and says so once', async (t) => {
  const dead = await deadUpstream()
  const b = await upstream(t, 'b')
  // Without the refusal backoff, which would pass over the dead target before any ejection.
  const gw = await gateway(t, [{ name: 'passive', prefix: '/passive', upstream: { targets: [dead, b.url], refusedBackoff: 0 } }])
  t.same(await flagSequence(gw, '/passive/', 8), ['UCF', 'ok', 'UCF', 'ok', 'ok', 'ok', 'ok', 'ok'], 'out after 2 consecutive failures')
  const warnings = unhealthyWarnings(gw)
  t.equal(warnings.length, 1)
  t.match(warnings[0], { api_name: 'passive', healthy: false, reason: 'connection_refused' })
})

t.test('a single target is never ejected on passive evidence alone', async (t) => {
  const dead = await deadUpstream()
  const gw = await gateway(t, [{ name: 'single', prefix: '/single', upstream: { targets: [dead] } }])
  for (let i = 0; i < 4; i++) t.equal((await get(gw, '/single/')).line.response_flag, 'UCF')
})

/** A `lookup` that resolves every name to 127.0.0.1 and counts its calls: one per dial. */
function countingLookup (): { lookup: LookupFunction, calls: () => number } {
  let calls = 0
  const lookup = ((_hostname: string, options: LookupOptions, callback: (err: Error | null, address: string | LookupAddress[], family?: number) => void) => {
    calls++
    if (options.all === true) callback(null, [{ address: '127.0.0.1', family: 4 }])
    else callback(null, '127.0.0.1', 4)
  }) as unknown as LookupFunction
  return { lookup, calls: () => calls }
}

t.test('a target that refused is not dialled during refusedBackoff: UCF at once, then it is dialled again', async (t) => {
  const port = await closedPort()
  const dns = countingLookup()
  const address = `refusing.test:${port}`
  const gw = await gateway(t, [{ name: 'held', prefix: '/held', upstream: { targets: [`http://${address}`], refusedBackoff: 1500, lookup: dns.lookup } }])
  const first = await get(gw, '/held/')
  const refusedAt = Date.now()
  t.match(first.line, { response_flag: 'UCF', upstream_attempts: 1, upstream_addr: address, error_target: address })
  t.equal(dns.calls(), 1)

  const held = await get(gw, '/held/')
  t.ok(Date.now() - refusedAt < 1500, 'asked within the backoff')
  t.equal(held.status, 502)
  const { request_id: heldId, ...heldBody } = JSON.parse(held.body)
  const { request_id: firstId, ...firstBody } = JSON.parse(first.body)
  t.same(heldBody, firstBody, 'the same answer as a dialled refusal')
  t.not(heldId, firstId)
  t.match(held.line, { response_flag: 'UCF', response_code_details: 'connection_refused', error_source: 'UpstreamProxy', error_target: address, upstream_addr: address })
  t.notOk('upstream_attempts' in held.line, 'no attempt was made')
  t.notOk('upstream_latency' in held.line)
  t.equal(dns.calls(), 1, 'not dialled')

  // The upstream comes back on that port: once the backoff is over, it gets the next request.
  const server = http.createServer((_req, res) => res.end('{"back":true}'))
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  await new Promise((resolve) => setTimeout(resolve, 1600 - (Date.now() - refusedAt)))
  const back = await get(gw, '/held/')
  t.equal(back.status, 200)
  t.match(back.line, { status: 200, upstream_attempts: 1, response_source: 'upstream' })
  t.equal(dns.calls(), 2)
})

t.test('refusedBackoff 0 dials a refusing target for every request', async (t) => {
  const port = await closedPort()
  const dns = countingLookup()
  const gw = await gateway(t, [{ name: 'every', prefix: '/every', upstream: { targets: [`http://refusing.test:${port}`], refusedBackoff: 0, lookup: dns.lookup } }])
  for (let i = 0; i < 3; i++) t.match((await get(gw, '/every/')).line, { response_flag: 'UCF', upstream_attempts: 1 })
  t.equal(dns.calls(), 3)
})

t.test('with several targets, one that refused is passed over during its backoff, without being ejected', async (t) => {
  const dead = await deadUpstream()
  const b = await upstream(t, 'b')
  const gw = await gateway(t, [{ name: 'skip', prefix: '/skip', upstream: { targets: [dead, b.url], refusedBackoff: 5000 } }])
  t.same(await flagSequence(gw, '/skip/', 6), ['UCF', 'ok', 'ok', 'ok', 'ok', 'ok'])
  t.equal(b.hits, 5)
  t.equal(unhealthyWarnings(gw).length, 0, 'one failure is no ejection')
})

t.test('active health checks: all targets unhealthy is NHU 503 from the LoadBalancer; recovery brings them back', async (t) => {
  const a = await upstream(t, 'a')
  const b = await upstream(t, 'b')
  a.healthy = false
  b.healthy = false
  const gw = await gateway(t, [{
    name: 'hc',
    prefix: '/hc',
    upstream: { targets: [a.url, b.url], healthCheck: { path: '/health', interval: 100, timeout: 500, unhealthyThreshold: 1, healthyThreshold: 1 } }
  }])
  await new Promise((resolve) => setTimeout(resolve, 300))
  const down = await get(gw, '/hc/')
  t.equal(down.status, 503)
  t.equal(JSON.parse(down.body).message, 'No healthy upstream service is available')
  t.match(down.line, { response_flag: 'NHU', response_code_details: 'no_healthy_upstreams', error_source: 'LoadBalancer', error_category: 'upstream', error_target: `${a.address},${b.address}` })
  t.equal(a.hits + b.hits, 0, 'no target was tried')
  b.healthy = true
  await new Promise((resolve) => setTimeout(resolve, 300))
  const up = await get(gw, '/hc/')
  t.equal(up.status, 200)
  t.equal(JSON.parse(up.body).from, 'b')
  t.ok(gw.appLog.some((l) => l.msg === 'faultline: upstream target healthy again' && l.upstream_addr === b.address))
})

t.test('an upload the upstream stops reading is EPI broken_pipe (or URR when the reset wins the race)', async (t) => {
  const a = await upstream(t, 'a', (req) => { req.socket.destroy(); return true })
  const gw = await gateway(t, [{ name: 'upload', prefix: '/upload', bodyLimit: 64 * 1024 * 1024, upstream: { targets: [a.url] } }])
  const body = Buffer.alloc(16 * 1024 * 1024, 'x').toString()
  const res = await get(gw, '/upload/', { method: 'POST', body, headers: { 'content-type': 'application/octet-stream' } })
  t.equal(res.status, 502)
  t.match(res.line.response_flag, /^(EPI|URR)$/)
  t.equal(res.line.error_source, 'UpstreamProxy')
  t.equal(res.line.error_target, a.address)
})

t.test('a declared body over the API bodyLimit is BTL 413 and never reaches the upstream', async (t) => {
  const a = await upstream(t, 'a')
  const gw = await gateway(t, [{ name: 'small', prefix: '/small', bodyLimit: 10, upstream: { targets: [a.url] } }])
  const res = await get(gw, '/small/', { method: 'POST', body: 'x'.repeat(11), headers: { 'content-type': 'text/plain' } })
  t.equal(res.status, 413)
  t.match(res.line, { response_flag: 'BTL', error_source: 'RequestValidation' })
  t.equal(a.hits, 0)
})

t.test('the prefix itself and the prefix with a trailing slash reach the upstream, and the wrong method there is MNA', async (t) => {
  const a = await upstream(t, 'a')
  const gw = await gateway(t, [{ name: 'p', prefix: '/p', methods: ['GET'], upstream: { targets: [a.url + '/base'] } }])
  const bare = await get(gw, '/p?q=1')
  const slash = await get(gw, '/p/?q=2')
  t.same([bare.status, slash.status], [200, 200])
  t.same([JSON.parse(bare.body).url, JSON.parse(slash.body).url], ['/base/?q=1', '/base/?q=2'], 'both reach the base path')
  t.equal(bare.line.route, '/p')
  // '/p/*' matches '/p/' (an empty wildcard); with the router's ignoreTrailingSlash, '/p' does.
  t.ok(['/p', '/p/*'].includes(slash.line.route as string), `the slash path's line names an API pattern (${String(slash.line.route)})`)
  const wrong = await get(gw, '/p/', { method: 'DELETE' })
  t.equal(wrong.status, 405)
  t.match(wrong.line, { response_flag: 'MNA', api_name: 'p' })
  const other = await get(gw, '/px')
  t.match(other.line, { status: 404, response_flag: 'NRF' }, 'a longer name is not under the prefix')
  t.equal(a.hits, 2)
})

t.test('methods outside the API list are MNA 405 with Allow', async (t) => {
  const a = await upstream(t, 'a')
  const gw = await gateway(t, [{ name: 'ro', prefix: '/ro', methods: ['GET'], upstream: { targets: [a.url] } }])
  const res = await get(gw, '/ro/x', { method: 'DELETE' })
  t.equal(res.status, 405)
  t.equal(res.headers.allow, 'GET')
  t.match(res.line, { response_flag: 'MNA', error_source: 'Router', api_name: 'ro' })
  t.equal(a.hits, 0)
})

t.test('APIs with the same methods share their list, APIs with others keep their own', async (t) => {
  const a = await upstream(t, 'a')
  const gw = await gateway(t, [
    { name: 'ro', prefix: '/ro', methods: ['GET'], upstream: { targets: [a.url] } },
    { name: 'rw', prefix: '/rw', methods: ['GET', 'POST'], upstream: { targets: [a.url] } },
    { name: 'ro2', prefix: '/ro2', methods: ['GET'], upstream: { targets: [a.url] } }
  ])
  for (const path of ['/ro/x', '/ro2/x']) {
    const res = await get(gw, path, { method: 'POST' })
    t.equal(res.status, 405, `POST ${path}`)
    t.equal(res.headers.allow, 'GET')
  }
  const posted = await get(gw, '/rw/x', { method: 'POST' })
  t.equal(posted.status, 200, 'POST /rw/x is proxied')
  t.equal((await get(gw, '/ro2/x')).status, 200)
  t.equal((await get(gw, '/rw/x', { method: 'DELETE' })).headers.allow, 'GET, POST')
  t.equal(a.hits, 2)
})

t.test('a path escaping the API prefix is refused before dialling', async (t) => {
  const a = await upstream(t, 'a')
  const gw = await gateway(t, [{ name: 'esc', prefix: '/esc', upstream: { targets: [a.url + '/v2'] } }])
  const res = await get(gw, '/esc/%2e%2e/admin')
  t.equal(res.status, 400)
  t.match(res.line, { response_flag: 'IHD', response_code_details: 'invalid_path' })
  t.equal(a.hits, 0)
})

t.test('bad proxy options fail at registration, naming the option and the value', async (t) => {
  await t.rejects(startGateway([{ name: 'x', prefix: '/x', upstream: { targets: ['ftp://nope'] } }]), /upstream.targets\[0\]" must be an http\(s\) URL, got "ftp:\/\/nope"/)
  await t.rejects(startGateway([{ name: 'x', prefix: '/x', upstream: { targets: ['http://127.0.0.1:1'], retries: -1 } }]), /upstream.retries" must be an integer >= 0, got -1/)
  await t.rejects(startGateway([{ name: 'x', prefix: '/x', upstream: { targets: ['http://127.0.0.1:1'], refusedBackoff: 1.5 } }]), /upstream.refusedBackoff" must be an integer >= 0, got 1.5/)
  await t.rejects(startGateway([{ name: 'x', prefix: '/x', methods: ['BREW' as 'GET'], upstream: { targets: ['http://127.0.0.1:1'] } }]), /methods\[0\]" must be one of/)
})

for (const method of ['GET', 'POST']) {
  t.test(`a ${method} client that leaves while the upstream works is CDC 499, and the upstream request is cancelled`, async (t) => {
    const seen = { cancelled: false }
    const a = await upstream(t, 'a', (req, res) => {
      req.resume()
      res.on('close', () => { seen.cancelled = !res.writableFinished })
      return true // never answers
    })
    const gw = await gateway(t, [{ name: 'leave', prefix: '/leave', upstream: { targets: [a.url] } }])
    const { port } = new URL(gw.url)
    const socket = net.connect(Number(port), '127.0.0.1')
    const body = method === 'POST' ? '{"a":1}' : ''
    socket.write(`${method} /leave/x HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`)
    while (a.hits === 0) await new Promise((resolve) => setTimeout(resolve, 10))
    await new Promise((resolve) => setTimeout(resolve, 100))
    socket.destroy()
    const line = await gw.log.next()
    t.match(line, { status: 499, response_flag: 'CDC', response_code_details: 'client_disconnected', error_source: 'Client', upstream_addr: a.address, upstream_attempts: 1 })
    t.ok((line.upstream_latency as number) >= 90, `upstream_latency says how long it waited (${String(line.upstream_latency)} ms)`)
    for (let i = 0; i < 100 && !seen.cancelled; i++) await new Promise((resolve) => setTimeout(resolve, 10))
    t.ok(seen.cancelled, 'the upstream saw its request cancelled')
    await new Promise((resolve) => setTimeout(resolve, 50))
    t.equal(gw.log.lines.length, 1, 'one line for the request, nothing after')
    t.notOk(gw.appLog.some((l) => l.msg === 'faultline: unexpected error'), 'the cancellation is not an error')
  })
}

t.test("the upstream's hop-by-hop headers stay on its hop: a client's Connection: close is honoured", async (t) => {
  const a = await upstream(t, 'a', (req, res) => {
    req.resume()
    res.setHeader('connection', 'keep-alive, x-hop-secret')
    res.setHeader('keep-alive', 'timeout=5')
    res.setHeader('x-hop-secret', 'internal')
    res.setHeader('x-kept', 'yes')
    res.end('ok')
    return true
  })
  const gw = await gateway(t, [{ name: 'hop', prefix: '/hop', upstream: { targets: [a.url] } }])
  const res = await get(gw, '/hop/', { headers: { connection: 'close' } })
  t.equal(res.status, 200)
  t.equal(res.headers['x-kept'], 'yes')
  t.equal(res.headers['x-hop-secret'], undefined, 'a header the upstream listed in Connection is dropped')
  t.equal(res.headers['keep-alive'], undefined)
  t.equal(res.headers.connection, 'close')
})
