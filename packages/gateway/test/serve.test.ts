// End to end: buildGateway and serve with the real core, access-log and proxy plugins, against
// upstreams on loopback; and `faultline serve` as a child process.
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, writeFileSync } from 'node:fs'
import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import https from 'node:https'
import { connect, type AddressInfo } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { createCa, createLeaf } from '@faultline/fault-lab'
import { buildGateway, serve, type GatewayConfigInput } from '@faultline/gateway'
import { httpRequest, type HttpAnswer } from '../../../test/helpers/http-client.js'

type Line = Record<string, unknown>

const bin = fileURLToPath(new URL('../bin/faultline.js', import.meta.url))
const builtCli = fileURLToPath(new URL('../dist/cli.js', import.meta.url))

interface Upstream {
  url: string
  paths: string[]
}

/** A loopback upstream; `delay` ms before it answers `hello <path>`. */
async function startUpstream (t: Test, delay = 0): Promise<Upstream> {
  const paths: string[] = []
  const server = http.createServer((req: IncomingMessage, res: ServerResponse) => {
    paths.push(req.url ?? '')
    const timer = setTimeout(() => res.end(`hello ${req.url ?? ''}`), delay)
    res.on('close', () => clearTimeout(timer))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    server.closeAllConnections()
    server.close()
  })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, paths }
}

type Response = HttpAnswer

async function get (url: string, options: https.RequestOptions = {}): Promise<Response> {
  return await httpRequest(url, options)
}

/** An access-log destination that keeps the parsed lines. */
function collector (): { lines: Line[], write: (chunk: string) => void } {
  const lines: Line[] = []
  return {
    lines,
    write (chunk: string) {
      for (const line of chunk.split('\n')) if (line !== '') lines.push(JSON.parse(line) as Line)
    }
  }
}

function configFor (upstream: string, patch: Partial<GatewayConfigInput> = {}): GatewayConfigInput {
  return {
    server: { port: 0 },
    apis: [{ name: 'Hello API', prefix: '/hello', upstream: { targets: [upstream] } }],
    ...patch
  }
}

/** Waits until `predicate` holds (access lines are written when the response has closed). */
async function until (predicate: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms
  while (!predicate()) {
    if (Date.now() > end) throw new Error('timed out waiting')
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

t.test('buildGateway proxies under the API prefix and writes one access line', async (t) => {
  const upstream = await startUpstream(t)
  const log = collector()
  const app = await buildGateway(configFor(upstream.url), { accessLogDestination: log, logger: false })
  t.teardown(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`

  const res = await get(`${base}/hello/world?x=1`, { headers: { 'x-request-id': 'req-1' } })
  t.equal(res.status, 200)
  t.equal(res.body, 'hello /world?x=1')
  t.equal(res.headers['x-request-id'], 'req-1')
  t.same(upstream.paths, ['/world?x=1'], 'the prefix is stripped')
  await until(() => log.lines.length === 1)
  t.match(log.lines[0], {
    msg: 'access',
    request_id: 'req-1',
    method: 'GET',
    path: '/hello/world',
    api_name: 'Hello API',
    status: 200,
    response_source: 'upstream',
    upstream_status: 200
  })
  t.notOk('response_flag' in log.lines[0])
})

t.test('an API with auth in the config guards only its own routes', async (t) => {
  const upstream = await startUpstream(t)
  const log = collector()
  const config = configFor(upstream.url)
  config.apis.push({ name: 'Open API', prefix: '/open', upstream: { targets: [upstream.url] } })
  config.apis[0].auth = { type: 'apiKey', keys: [{ id: 'acme', key: 'sk_test_gateway_1' }] }
  const app = await buildGateway(config, { accessLogDestination: log, logger: false })
  t.teardown(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`

  t.equal((await get(`${base}/hello/x`)).status, 401)
  t.equal((await get(`${base}/hello/x`, { headers: { 'x-api-key': 'sk_test_gateway_1' } })).status, 200)
  t.equal((await get(`${base}/open/x`)).status, 200, 'the other API needs no key')
  await until(() => log.lines.length === 3)
  t.match(log.lines, [
    { api_name: 'Hello API', status: 401, response_flag: 'AMF', error_source: 'ApiKeyAuth' },
    { api_name: 'Hello API', status: 200, consumer: 'acme' },
    { api_name: 'Open API', status: 200 }
  ])
  t.same(upstream.paths, ['/x', '/x'], 'the denied request never reached the upstream')
  t.notMatch(JSON.stringify(log.lines), /sk_test/)
})

t.test('load shedding answers OVL 503 with Retry-After while the event loop lags, then recovers', async (t) => {
  const upstream = await startUpstream(t)
  const log = collector()
  const config = configFor(upstream.url, { server: { port: 0, loadShedding: { maxEventLoopDelay: 20, sampleInterval: 50, retryAfter: 3 } } })
  const app = await buildGateway(config, { accessLogDestination: log, logger: false })
  t.teardown(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  // A loaded machine may lag past 20 ms on its own at start: wait (bounded) for a served request.
  let first = 0
  for (let i = 0; i < 20 && first !== 200; i++) {
    if (i > 0) await new Promise((resolve) => setTimeout(resolve, 100))
    first = (await get(`${base}/hello/x`)).status
  }
  t.equal(first, 200)
  // Block the event loop well past the threshold, as a CPU-bound hot path would. (On a loaded
  // machine the sampler may miss one block: a few tries, bounded.)
  let shed = { status: 0, headers: {}, body: '' } as Awaited<ReturnType<typeof get>>
  let served = 1
  for (let i = 0; i < 5 && shed.status !== 503; i++) {
    const busyUntil = Date.now() + 200
    while (Date.now() < busyUntil) { /* busy */ }
    shed = await get(`${base}/hello/x`)
    if (shed.status === 200) served++
  }
  t.equal(shed.status, 503)
  t.equal(shed.headers['retry-after'], '3')
  t.equal(JSON.parse(shed.body).message, 'The gateway is overloaded')
  let status = 0
  for (let i = 0; i < 20 && status !== 200; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100))
    status = (await get(`${base}/hello/x`)).status
    if (status === 200) served++
  }
  t.equal(status, 200, 'served again once the loop is idle')
  await until(() => log.lines.some((l) => l.response_flag === 'OVL'))
  t.match(log.lines.find((l) => l.response_flag === 'OVL'), { status: 503, response_flag: 'OVL', response_code_details: 'gateway_overloaded', error_source: 'LoadShedding', error_category: 'gateway' })
  t.equal(upstream.paths.length, served, 'the shed requests never reached the upstream')
})

t.test('a path outside every API is NRF, and exposeFlag shows the flag', async (t) => {
  const upstream = await startUpstream(t)
  const log = collector()
  const app = await buildGateway(configFor(upstream.url, { server: { port: 0, exposeFlag: true } }), { accessLogDestination: log, logger: false })
  t.teardown(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  const res = await get(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}/nowhere`)
  t.equal(res.status, 404)
  t.equal(res.headers['x-faultline-flag'], 'NRF')
  t.match(JSON.parse(res.body), { statusCode: 404, code: 'NRF' })
  await until(() => log.lines.length === 1)
  t.match(log.lines[0], { status: 404, response_flag: 'NRF', response_code_details: 'no_route' })
})

t.test('per-API methods and fields come from the config', async (t) => {
  const upstream = await startUpstream(t)
  const log = collector()
  const app = await buildGateway({
    server: { port: 0, trustRequestId: false },
    accessLog: { fields: ['status', 'response_flag'] },
    apis: [{ name: 'Read only', prefix: '/ro', methods: ['GET'], upstream: { targets: [upstream.url] } }]
  }, { accessLogDestination: log, logger: false })
  t.teardown(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  const res = await get(`${base}/ro/x`, { method: 'DELETE', headers: { 'x-request-id': 'mine' } })
  t.equal(res.status, 405)
  t.not(res.headers['x-request-id'], 'mine', 'trustRequestId: false ignores the incoming id')
  await until(() => log.lines.length === 1)
  t.same(Object.keys(log.lines[0]).sort(), ['level', 'msg', 'request_id', 'response_flag', 'status', 'time'])
  t.match(log.lines[0], { status: 405, response_flag: 'MNA' })
})

t.test('accessLog.enabled: false writes no lines', async (t) => {
  const upstream = await startUpstream(t)
  const log = collector()
  const app = await buildGateway(configFor(upstream.url, { accessLog: { enabled: false } }), { accessLogDestination: log, logger: false })
  t.teardown(() => app.close())
  await app.listen({ host: '127.0.0.1', port: 0 })
  const res = await get(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}/hello/x`)
  t.equal(res.status, 200)
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.same(log.lines, [])
})

t.test('serve prints the listening address once, and close() drains and resolves 0', async (t) => {
  const upstream = await startUpstream(t)
  let stderr = ''
  const log = collector()
  const running = await serve(configFor(upstream.url), {
    accessLogDestination: log,
    logger: false,
    handleSignals: false,
    stderr: { write: (text: string) => { stderr += text } }
  })
  t.match(running.url, /^http:\/\/127\.0\.0\.1:\d+$/)
  t.equal(stderr, `faultline listening on ${running.url}\n`)
  const res = await get(`${running.url}/hello/a`)
  t.equal(res.status, 200)
  t.equal(await running.close(), 0)
  t.equal(await running.closed, 0)
  t.equal(log.lines.length, 1)
})

t.test('in-flight requests finish during the drain', async (t) => {
  const upstream = await startUpstream(t, 300)
  const log = collector()
  const running = await serve(configFor(upstream.url), { accessLogDestination: log, logger: false, handleSignals: false, stderr: { write: () => {} } })
  const pending = get(`${running.url}/hello/slow`)
  await until(() => upstream.paths.length === 1)
  const closed = running.close()
  const res = await pending
  t.equal(res.status, 200)
  t.equal(res.body, 'hello /slow')
  t.equal(await closed, 0)
  t.match(log.lines, [{ status: 200, path: '/hello/slow' }])
})

t.test('a request that arrives on an open connection while draining gets SHD', async (t) => {
  const upstream = await startUpstream(t, 300)
  const log = collector()
  const running = await serve(configFor(upstream.url), { accessLogDestination: log, logger: false, handleSignals: false, stderr: { write: () => {} } })
  const port = Number(new URL(running.url).port)
  const socket = connect(port, '127.0.0.1')
  let raw = ''
  socket.setEncoding('utf8')
  socket.on('data', (chunk: string) => { raw += chunk })
  const ended = new Promise((resolve) => socket.on('close', resolve))
  socket.write('GET /hello/slow HTTP/1.1\r\nHost: x\r\n\r\n')
  await until(() => upstream.paths.length === 1)
  const closed = running.close()
  // Pipelined behind the in-flight request: the server reads it once the first response is done.
  socket.write('GET /hello/late HTTP/1.1\r\nHost: x\r\n\r\n')
  await ended
  t.equal(await closed, 0)
  t.match(raw, /^HTTP\/1\.1 200 OK\r\n[\s\S]*hello \/slow/)
  const second = raw.indexOf('HTTP/1.1 ', 10)
  t.not(second, -1, 'the pipelined request got an answer')
  t.match(raw.slice(second), /^HTTP\/1\.1 503 Service Unavailable\r\n/)
  t.match(raw.slice(second), /\r\nconnection: close\r\n/i)
  t.same(upstream.paths, ['/slow'], 'the late request never reached the upstream')
  t.match(log.lines, [{ status: 200, path: '/hello/slow' }, { status: 503, response_flag: 'SHD', error_source: 'Gateway', path: '/hello/late' }])
})

t.test('the drain is bounded: client connections still open after drainTimeout are closed', async (t) => {
  const upstream = await startUpstream(t, 60_000)
  const log = collector()
  // The proxy releases its upstream requests only when they end (here: responseTimeout), so
  // close() itself resolves after that; the clients are cut at the drain timeout.
  const config = configFor(upstream.url)
  config.apis[0].upstream.responseTimeout = 1500
  const running = await serve(config, {
    accessLogDestination: log, logger: false, handleSignals: false, drainTimeout: 200, stderr: { write: () => {} }
  })
  const start = Date.now()
  const pending = get(`${running.url}/hello/stuck`).catch((err: Error) => err).then((result) => ({ result, after: Date.now() - start }))
  await until(() => upstream.paths.length === 1)
  const closed = running.close()
  const { result, after } = await pending
  t.type(result, Error, 'the stuck request was cut')
  t.ok(after < 1400, `cut at the drain timeout, before the upstream timeout (${after} ms)`)
  t.equal(await closed, 0)
  t.equal(log.lines.length, 1, 'the cut request is still logged')
  t.match(log.lines[0], { path: '/hello/stuck', response_flag: 'SHD', response_code_details: 'gateway_shutting_down', error_source: 'Gateway' }, 'cut by the drain: SHD, not the client leaving')
})

t.test('serve speaks HTTPS when server.tls is set', async (t) => {
  const upstream = await startUpstream(t)
  const ca = createCa({ commonName: 'Serve Test CA' })
  const leaf = createLeaf({ issuer: ca, commonName: 'localhost', altNames: [{ dns: 'localhost' }, { ip: '127.0.0.1' }] })
  let stderr = ''
  const running = await serve(configFor(upstream.url, { server: { port: 0, tls: { cert: leaf.cert, key: leaf.key } } }), {
    accessLogDestination: collector(), logger: false, handleSignals: false, stderr: { write: (text: string) => { stderr += text } }
  })
  t.teardown(() => running.close())
  t.match(running.url, /^https:\/\/127\.0\.0\.1:\d+$/)
  t.equal(stderr, `faultline listening on ${running.url}\n`)
  const res = await get(`${running.url}/hello/tls`, { ca: ca.cert })
  t.equal(res.status, 200)
  t.equal(res.body, 'hello /tls')
})

interface Child {
  proc: ChildProcess
  url: string
  stdout: () => string
  stderr: () => string
  exit: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
}

/** Starts `faultline serve --config <file>` and waits for its listening line. */
async function startCli (t: Test, config: unknown): Promise<Child> {
  const dir = t.testdir()
  const file = join(dir, 'gateway.json')
  writeFileSync(file, JSON.stringify(config))
  const proc = spawn(process.execPath, [bin, 'serve', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  proc.stdout?.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
  proc.stderr?.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const exit = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>((resolve) => {
    proc.on('exit', (code, signal) => resolve({ code, signal }))
  })
  t.teardown(() => { if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL') })
  const listening = /faultline listening on (\S+)\n/
  await Promise.race([
    until(() => listening.test(stderr), 15_000),
    exit.then(({ code }) => { throw new Error(`faultline serve exited early (${String(code)}): ${stderr}`) })
  ])
  return { proc, url: (listening.exec(stderr) as RegExpExecArray)[1], stdout: () => stdout, stderr: () => stderr, exit }
}

const cliConfig = (upstream: string): unknown => ({
  server: { port: 0 },
  apis: [{ name: 'Hello API', prefix: '/hello', upstream: { targets: [upstream] } }]
})

t.test('faultline serve: one access line on stdout, SIGTERM exits 0', async (t) => {
  if (!existsSync(builtCli)) {
    t.fail('packages/gateway/dist/cli.js is missing: run `npx tsc -b packages/gateway` before the tests')
    return
  }
  const upstream = await startUpstream(t)
  const child = await startCli(t, cliConfig(upstream.url))
  t.match(child.url, /^http:\/\/127\.0\.0\.1:\d+$/)
  const res = await get(`${child.url}/hello/there`)
  t.equal(res.status, 200)
  t.equal(res.body, 'hello /there')
  child.proc.kill('SIGTERM')
  const { code, signal } = await child.exit
  t.equal(code, 0)
  t.equal(signal, null)

  const lines = child.stdout().split('\n').filter((l) => l !== '')
  t.equal(lines.length, 1, 'exactly one line on stdout')
  const line = JSON.parse(lines[0]) as Line
  t.match(line, { msg: 'access', method: 'GET', path: '/hello/there', api_name: 'Hello API', status: 200, response_source: 'upstream' })
  t.equal(child.stderr().match(/faultline listening on/g)?.length, 1, 'the address is printed once, on stderr')
})

t.test('faultline serve: SIGTERM lets an in-flight request finish', async (t) => {
  if (!existsSync(builtCli)) {
    t.fail('packages/gateway/dist/cli.js is missing: run `npx tsc -b packages/gateway` before the tests')
    return
  }
  const upstream = await startUpstream(t, 500)
  const child = await startCli(t, cliConfig(upstream.url))
  const pending = get(`${child.url}/hello/slow`)
  await until(() => upstream.paths.length === 1)
  child.proc.kill('SIGTERM')
  const res = await pending
  t.equal(res.status, 200)
  t.equal(res.body, 'hello /slow')
  const { code } = await child.exit
  t.equal(code, 0)
  const lines = child.stdout().split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Line)
  t.match(lines, [{ msg: 'access', status: 200, path: '/hello/slow' }])
})

t.test('faultline serve: a second signal exits at once', async (t) => {
  if (!existsSync(builtCli)) {
    t.fail('packages/gateway/dist/cli.js is missing: run `npx tsc -b packages/gateway` before the tests')
    return
  }
  const upstream = await startUpstream(t, 60_000)
  const child = await startCli(t, cliConfig(upstream.url))
  const pending = get(`${child.url}/hello/stuck`).catch((err: Error) => err)
  await until(() => upstream.paths.length === 1)
  child.proc.kill('SIGTERM')
  await until(() => child.stderr().includes('draining'))
  const start = Date.now()
  child.proc.kill('SIGINT')
  const { code } = await child.exit
  t.ok(Date.now() - start < 5000, 'did not wait for the drain')
  t.not(code, 0, 'a forced exit is not a clean one')
  t.type(await pending, Error)
})
